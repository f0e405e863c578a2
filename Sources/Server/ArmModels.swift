import Models
import RecCore
import Scenario

/// What an arm serves with, built once from its settings and the models its trainer holds:
/// each kind of ranking and retrieval carries exactly what it needs, so serving a request
/// checks nothing optional. A model the settings call for and the trainer lacks is caught
/// once, where the value is built.
public struct ArmModels {
    public enum Ranking {
        /// Uniform random scores.
        case random
        /// Click counts.
        case popularity
        /// Smoothed click-through rate: (clicks + a) / (impressions + b).
        case ctr(priorClicks: Double, priorImpressions: Double)
        /// A long-sequence model (DARE, TWIN, DIN) over the users' histories.
        case sequence(RankingModel, UserHistories)
        /// EmbSum-style poly-attention over the users' histories.
        case poly(PolyModel, UserHistories)
        /// Poly for items younger than `youngTicks`, the sequence model for the rest.
        case blend(young: PolyModel, UserHistories, established: RankingModel, UserHistories, youngTicks: Int)
    }

    public enum Retrieval {
        /// Random or popularity retrieval from the live catalog (and the item statistics).
        case catalog
        /// Two-tower or SPARC retrieval.
        case towers(TowerRetrieval, InterestTowers, InterestUsers)
    }

    public let ranking: Ranking
    public let retrieval: Retrieval

    public init(ranking: Ranking, retrieval: Retrieval) {
        self.ranking = ranking
        self.retrieval = retrieval
    }

    /// The models of an arm with `settings`, from the ones its trainer built (nil where it
    /// built none).
    public init(settings: ArmSettings, sequence: (model: RankingModel, histories: UserHistories)? = nil,
                poly: (model: PolyModel, histories: UserHistories)? = nil,
                towers: (towers: InterestTowers, users: InterestUsers)? = nil) {
        func missing(_ what: String) -> Never {
            preconditionFailure("arm \(settings.name) is built without its \(what)")
        }
        switch settings.ranking {
        case .random: ranking = .random
        case .popularity: ranking = .popularity
        case .ctr(let a, let b): ranking = .ctr(priorClicks: a, priorImpressions: b)
        case .sequence:
            guard let sequence else { missing("sequence model") }
            ranking = .sequence(sequence.model, sequence.histories)
        case .poly:
            guard let poly else { missing("poly-attention model") }
            ranking = .poly(poly.model, poly.histories)
        case .blend(_, _, let youngTicks):
            guard let sequence, let poly else { missing("blend's two models") }
            ranking = .blend(young: poly.model, poly.histories, established: sequence.model, sequence.histories, youngTicks: youngTicks)
        }
        switch settings.retrieval {
        case .random, .popularity: retrieval = .catalog
        case .towers(let t):
            guard let towers else { missing("retrieval towers") }
            retrieval = .towers(t, towers.towers, towers.users)
        }
    }
}
