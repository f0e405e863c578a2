import Foundation
import Testing
@testable import Experiment
@testable import RecCore

@Suite("CUPED and off-policy estimators against the fixtures")
struct CupedAndOffPolicyTests {
    @Test("every cuped fixture: theta, adjusted and unadjusted Welch, variance reduction")
    func cuped() throws {
        let cases = try fixtureCases(kind: "cuped")
        #expect(cases.count == 2)
        for c in cases {
            let id = c["id"].map { "\($0)" } ?? "?"
            let i = c["inputs"]!, e = c["expected"]!
            let r = Cuped(yA: numbers(i["y_a"]), xA: numbers(i["x_a"]), yB: numbers(i["y_b"]), xB: numbers(i["x_b"]),
                          confidence: number(i["confidence"]))
            let values: [(String, Double)] = [
                ("theta", r.theta), ("adjusted_mean_a", r.adjusted.meanA), ("adjusted_mean_b", r.adjusted.meanB),
                ("adjusted_var_a", r.adjusted.varianceA), ("adjusted_var_b", r.adjusted.varianceB),
                ("adjusted_difference", r.adjusted.difference), ("adjusted_standard_error", r.adjusted.standardError),
                ("adjusted_df", r.adjusted.degreesOfFreedom), ("adjusted_t", r.adjusted.t),
                ("unadjusted_difference", r.unadjusted.difference), ("unadjusted_standard_error", r.unadjusted.standardError),
                ("variance_reduction_of_difference", r.varianceReduction),
            ]
            for (key, got) in values {
                #expect(close(got, number(e[key]), relative: 1e-10, absolute: 1e-12), "\(id) \(key): \(got) vs \(number(e[key]))")
            }
            for (key, got) in [("adjusted_p_value", r.adjusted.pValue), ("unadjusted_p_value", r.unadjusted.pValue),
                               ("adjusted_ci_low", r.adjusted.low), ("adjusted_ci_high", r.adjusted.high)] {
                #expect(close(got, number(e[key]), relative: 1e-8, absolute: 1e-15), "\(id) \(key): \(got) vs \(number(e[key]))")
            }
        }
    }

    @Test("a constant covariate leaves the test as it was")
    func constantCovariate() {
        let yA = [1.0, 2, 3, 4], yB = [2.0, 3, 5, 6]
        let r = Cuped(yA: yA, xA: [5, 5, 5, 5], yB: yB, xB: [5, 5, 5, 5])
        #expect(r.theta == 0)
        #expect(r.adjusted == WelchTest(a: yA, b: yB))
        #expect(r.varianceReduction == 0)
    }

    @Test("every ope_bandit fixture: IPS, SNIPS, DM and DR with intervals")
    func offPolicy() throws {
        let cases = try fixtureCases(kind: "ope_bandit")
        #expect(cases.count == 2)
        for c in cases {
            let id = c["id"].map { "\($0)" } ?? "?"
            let i = c["inputs"]!, e = c["expected"]!
            guard case .array(let targets)? = i["target_probs"], case .array(let models)? = i["reward_model"] else {
                Issue.record("\(id): no target_probs or reward_model")
                continue
            }
            let actions = numbers(i["action"]).map { Int($0) }, mu = numbers(i["logging_propensity"]), r = numbers(i["reward"])
            var ope = OffPolicyEstimate()
            for k in actions.indices {
                let pi = numbers(targets[k]), q = numbers(models[k])
                let underTarget = zip(pi, q).reduce(0.0) { $0 + $1.0 * $1.1 }
                ope.add(targetProbability: pi[actions[k]], loggingPropensity: mu[k], reward: r[k],
                        predicted: q[actions[k]], predictedUnderTarget: underTarget)
            }
            #expect(ope.count == actions.count)
            let checks: [(String, Double)] = [
                ("mean_weight", ope.meanWeight), ("direct_method", ope.directMethod),
                ("ips", ope.ips.estimate), ("ips_standard_error", ope.ips.standardError),
                ("ips_ci_low", ope.ips.low), ("ips_ci_high", ope.ips.high),
                ("snips", ope.snips.estimate), ("snips_standard_error", ope.snips.standardError),
                ("snips_ci_low", ope.snips.low), ("snips_ci_high", ope.snips.high),
                ("dr", ope.doublyRobust.estimate), ("dr_standard_error", ope.doublyRobust.standardError),
                ("dr_ci_low", ope.doublyRobust.low), ("dr_ci_high", ope.doublyRobust.high),
            ]
            for (key, got) in checks {
                #expect(close(got, number(e[key]), relative: 1e-10, absolute: 1e-12), "\(id) \(key): \(got) vs \(number(e[key]))")
            }
        }
    }

    @Test("with nothing logged every estimate is NaN, not a number that reads as a result")
    func empty() {
        let ope = OffPolicyEstimate()
        #expect(ope.ips.estimate.isNaN && ope.snips.estimate.isNaN && ope.doublyRobust.estimate.isNaN && ope.directMethod.isNaN)
    }
}
