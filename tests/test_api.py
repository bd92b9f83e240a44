"""The public names of ARCHITECTURE.md are a contract: an export slip fails here."""

import importlib
import subprocess
import sys

import pytest

CORE = {
    "mdmest": [
        "TotalCorrelation",
        "FTotalCorrelation",
        "WassersteinDependency",
        "DependencyMeasure",
        "make_measure",
        "estimate",
        "EstimateResult",
        "EstimateWarning",
        "__version__",
    ],
    "mdmest.critics": ["MLPCritic", "paper_critic"],
    "mdmest.sampling": ["product_of_marginals"],
    "mdmest.functional": ["dv_bound", "f_bound", "wasserstein_bound", "gradient_penalty"],
    "mdmest.reference": [
        "gaussian_mutual_information",
        "gaussian_total_correlation",
        "wasserstein_dependency",
    ],
    "mdmest.tasks": ["GaussianTask"],
}


@pytest.mark.parametrize("module", sorted(CORE))
def test_public_names_are_importable_and_exported(module):
    mod = importlib.import_module(module)
    for name in CORE[module]:
        assert hasattr(mod, name), f"{module}.{name}"
        if name != "__version__":
            assert name in mod.__all__, f"{name} missing from {module}.__all__"


def test_measures_subclass_the_base():
    import mdmest

    for cls in (mdmest.TotalCorrelation, mdmest.FTotalCorrelation, mdmest.WassersteinDependency):
        assert issubclass(cls, mdmest.DependencyMeasure)


def test_import_mdmest_pulls_no_extras():
    code = (
        "import sys, mdmest, mdmest.fusion; "
        "bad = [m for m in ('transformers', 'sklearn', 'h5py', 'matplotlib') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
