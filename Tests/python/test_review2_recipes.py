"""Review of the recipes' divergence handling: per-run measures built from a curve that went NaN."""
import math

import gatednet.experiments as ex
from gatednet.experiments import HOLDS, UNDECIDED, Results
from gatednet.experiments.recipes import r06_nu_dynamics as nu


def _run(model, seed, nus):
    rows = [dict(setting="", model=model, seed=seed, metric="ν at init", value=nus[0])]
    return {"rows": rows, "curve": {"nu": nus}, "model": model, "seed": seed}


def test_nu_dynamics_moved_of_a_run_that_diverged_is_nan_and_the_control_claim_undecided():
    """ν is NaN from the epoch the net diverged on (track); the largest move over the epochs is
    then NaN too, not the largest move before it blew up (Python's max skips a NaN that is not
    first), so the control claim is UNDECIDED naming the diverged seed instead of HOLDS."""
    steady = [2.0, 2.0, 2.0 * (1 + 1e-8)]
    results = {"c0": _run(nu.CONTROL, 0, steady), "c1": _run(nu.CONTROL, 1, [2.0, 2.0, float("nan")])}
    moved = {r["seed"]: r["value"] for r in nu.rows(results, {}) if r["metric"] == nu.MOVED}
    assert moved[0] < 1e-6 and math.isnan(moved[1]), moved
    claim = next(c for c in ex.get("nu-dynamics").claims if c.check is nu.control_fixed)
    v = claim.evaluate(Results(nu.rows(results, {})), {})
    assert v.status == UNDECIDED and "diverged" in v.detail, v
    assert claim.evaluate(Results(nu.rows({"c0": results["c0"]}, {})), {}).status == HOLDS
