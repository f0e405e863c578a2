#!/usr/bin/env python3
"""Known answers for the paired-design statistics (Sources/Experiment/PairedTests.swift).

Writes Tests/ExperimentTests/paired-fixtures.json. The paired t test comes from
scipy.stats.ttest_rel and its interval from scipy.stats.t.ppf; the delta-method lifts and
ratios from the numpy formulas written here (no library has them); CUPED on paired data from
numpy's covariance. Inputs are drawn with numpy's default_rng(seed) and rounded to 3
decimals, so the JSON holds them exactly. Run: python3 scripts/paired-fixtures.py
"""
import json
import numpy as np
import scipy
from scipy import stats

Z = 1.959963984540054


def normal(est, se):
    if not (se > 0 and np.isfinite(se) and np.isfinite(est)):
        return dict(z="NaN", p="NaN", low="NaN", high="NaN")
    z = est / se
    return dict(z=z, p=float(2 * stats.norm.sf(abs(z))), low=est - Z * se, high=est + Z * se)


def paired_t(a, b):
    d = b - a
    n = len(d)
    r = stats.ttest_rel(b, a)
    se = d.std(ddof=1) / np.sqrt(n)
    q = stats.t.ppf(0.975, n - 1)
    return dict(difference=float(d.mean()), standardError=float(se), t=float(r.statistic), df=float(n - 1),
                pValue=float(r.pvalue), low=float(d.mean() - q * se), high=float(d.mean() + q * se))


def paired_lift(a, b):
    n = len(a)
    ma, mb = a.mean(), b.mean()
    c = np.cov(a, b, ddof=1)
    r = mb / ma
    se = np.sqrt((c[1, 1] - 2 * r * c[0, 1] + r * r * c[0, 0]) / (n * ma * ma))
    o = normal(r - 1, se)
    return dict(lift=float(r - 1), standardError=float(se), z=o["z"], pValue=o["p"], low=o["low"], high=o["high"])


def paired_ratio(ya, xa, yb, xb):
    n = len(ya)
    ra, rb = ya.mean() / xa.mean(), yb.mean() / xb.mean()
    la = (ya - ra * xa) / xa.mean()
    lb = (yb - rb * xb) / xb.mean()
    se = np.sqrt(np.var(lb - la, ddof=1) / n)
    q = rb / ra
    rse = np.sqrt(np.var((lb - q * la) / ra, ddof=1) / n)
    d, rel = normal(rb - ra, se), normal(rb / ra - 1, rse)
    return dict(ratioA=float(ra), ratioB=float(rb), difference=float(rb - ra), standardError=float(se), pValue=d["p"],
                low=d["low"], high=d["high"], relativeLift=float(rb / ra - 1), relativeStandardError=float(rse),
                relativePValue=rel["p"], relativeLow=rel["low"], relativeHigh=rel["high"])


def paired_cuped(a, b, x):
    def theta(y):
        c = np.cov(y, x, ddof=1)
        return c[0, 1] / c[1, 1]
    ta, tb = theta(a), theta(b)
    aa, bb = a - ta * (x - x.mean()), b - tb * (x - x.mean())
    adj, raw = paired_t(aa, bb), paired_t(a, b)
    return dict(thetaA=float(ta), thetaB=float(tb), adjusted=adj, unadjusted=raw,
                varianceReduction=float(1 - adj["standardError"] ** 2 / raw["standardError"] ** 2), relativeLift=paired_lift(aa, bb))


def rounded(x):
    return np.round(x, 3)


cases = []
for seed, n, effect, rho in [(1, 12, 0.3, 0.9), (2, 60, 0.0, 0.5), (3, 200, 1.5, 0.95), (4, 8, -0.4, 0.2)]:
    rng = np.random.default_rng(seed)
    u = rng.gamma(2.0, 3.0, n)  # the user's level, shared by both copies
    a = rounded(u + rng.normal(0, 1, n) * np.sqrt(1 - rho) * 3)
    b = rounded(u * (1 + effect / 10) + effect + rng.normal(0, 1, n) * np.sqrt(1 - rho) * 3)
    x = rounded(0.6 * u + rng.normal(0, 1, n))  # a pre-period covariate
    xa = rounded(rng.poisson(20, n) + 1.0)
    xb = rounded(rng.poisson(20, n) + 1.0)
    ya = rounded(rng.binomial(xa.astype(int), 0.05) * 1.0)
    yb = rounded(rng.binomial(xb.astype(int), 0.05 * (1 + effect / 10)) * 1.0)
    cases.append(dict(
        id=f"paired-{seed}", seed=seed, n=n,
        inputs=dict(a=a.tolist(), b=b.tolist(), x=x.tolist(), numeratorA=ya.tolist(), denominatorA=xa.tolist(),
                    numeratorB=yb.tolist(), denominatorB=xb.tolist()),
        expected=dict(pairedT=paired_t(a, b), pairedLift=paired_lift(a, b), pairedRatio=paired_ratio(ya, xa, yb, xb),
                      pairedCuped=paired_cuped(a, b, x)),
    ))

# Edge: every difference equal (standard error 0): undefined, so NaN.
cases.append(dict(id="paired-constant-difference", seed=None, n=4,
                  inputs=dict(a=[1.0, 2.0, 3.0, 4.0], b=[2.0, 3.0, 4.0, 5.0]),
                  expected=dict(pairedT=dict(difference=1.0, standardError=0.0, t="NaN", df=3.0, pValue="NaN", low="NaN", high="NaN"))))

# The confidence sequence's half-width in GrowthBook's form (sigma, n, rho), which the
# Swift code writes in information time (V = sigma^2 / n, tau^2 = sigma^2 rho^2).
sequences = []
for sigma, n, rho2, alpha in [(2.0, 100, 0.01, 0.05), (0.3, 5000, 0.002, 0.05), (15.0, 40, 0.5, 0.1)]:
    hw = sigma * np.sqrt(2 * (n * rho2 + 1) / (n * n * rho2) * np.log(np.sqrt(n * rho2 + 1) / alpha))
    sequences.append(dict(variance=sigma * sigma / n, tau2=sigma * sigma * rho2, alpha=alpha, halfWidth=float(hw)))

# Wilson score intervals, from scipy.stats.binomtest(k, n).proportion_ci(method="wilson").
wilson = []
for k, n in [(10, 200), (0, 20), (13, 200), (160, 200), (200, 200)]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    wilson.append(dict(k=k, n=n, low=float(ci.low), high=float(ci.high)))

# Standard normal quantiles, from scipy.stats.norm.ppf (the power calculation's z).
quantiles = [dict(p=p, z=float(stats.norm.ppf(p))) for p in [1e-10, 0.001, 0.02, 0.2, 0.5, 0.8, 0.975, 0.99, 0.999999]]

doc = dict(
    title="Known answers for the paired-design statistics",
    generated_with=dict(numpy=np.__version__, scipy=scipy.__version__, script="scripts/paired-fixtures.py"),
    conventions="B minus A; ddof 1; paired t: scipy.stats.ttest_rel(b, a) with a t.ppf(0.975, n-1) interval; "
                "lifts and ratios: delta method with the arms' covariance, normal intervals (1.959963984540054); "
                "CUPED: theta per arm = cov(y, x)/var(x), x centred at its mean",
    cases=cases,
    confidenceSequences=sequences,
    wilson=wilson,
    normalQuantiles=quantiles,
)


def clean(v):
    if isinstance(v, float) and not np.isfinite(v):
        return "NaN"
    if isinstance(v, dict):
        return {k: clean(w) for k, w in v.items()}
    if isinstance(v, list):
        return [clean(w) for w in v]
    return v


with open("Tests/ExperimentTests/paired-fixtures.json", "w") as f:
    json.dump(clean(doc), f, indent=1)
    f.write("\n")
