"""The public API is a contract (ARCHITECTURE.md): each public module's ``__all__`` is pinned here, so
that adding, moving or dropping a public name is a decision made in this file, never a slip."""

import importlib
import pkgutil
import subprocess
import sys

import pytest

import mdmest

# Regenerate after a deliberate change of the API and review the diff.
PUBLIC = {
    "mdmest": {
        "DecomposedTotalCorrelation",
        "DependencyMeasure",
        "EstimateInputError",
        "EstimateResult",
        "EstimateWarning",
        "FTotalCorrelation",
        "TotalCorrelation",
        "WassersteinDependency",
        "__version__",
        "estimate",
        "make_measure",
    },
    "mdmest.experiments": {
        "DATA_SEED",
        "RunRecords",
        "STEP_RATIO_TARGET",
        "cpu_count",
        "error_statistics",
        "floor_critic",
        "floor_estimate",
        "floor_loss",
        "floor_step",
        "group_records",
        "machine_info",
        "markdown_table",
        "pyplot",
        "run_pending",
        "save_figure",
        "step_ratios",
        "suite_tasks",
        "wide_tasks",
    },
    "mdmest.critics": {
        "ACTIVATIONS",
        "GaussianCritic",
        "GaussianMixtureCritic",
        "GroupSort",
        "MLPCritic",
        "OffsetCritic",
        "apply_spectral_norm",
        "paper_critic",
    },
    "mdmest.sampling": {
        "SAMPLERS",
        "product_indices",
        "product_of_marginals",
        "shifted_product_indices",
    },
    "mdmest.functional": {
        "DIVERGENCES",
        "dv_bound",
        "effective_sample_fraction",
        "f_activation",
        "f_bound",
        "f_conjugate",
        "gradient_penalty",
        "interpolate",
        "lipschitz_constant",
        "log_mean_exp",
        "scale_grad",
        "wasserstein_bound",
    },
    "mdmest.measures": {
        "DependencyMeasure",
        "FTotalCorrelation",
        "KL_MEASURES",
        "LIPSCHITZ_METHODS",
        "MEASURES",
        "TotalCorrelation",
        "WassersteinDependency",
        "make_measure",
    },
    "mdmest.decomposition": {
        "DECOMPOSITIONS",
        "DecomposedTotalCorrelation",
        "split_views",
    },
    "mdmest.estimation": {
        "CANDIDATES",
        "Candidate",
        "CandidateValue",
        "DEFAULT",
        "EVAL_PRODUCT_ROWS",
        "EstimateConfig",
        "EstimateInputError",
        "EstimateResult",
        "EstimateWarning",
        "THOROUGH",
        "estimate",
        "gaussian_bound",
        "minimum_rows",
        "overfits",
        "part_sizes",
        "size_bound",
        "size_dependence",
        "still_rising",
    },
    "mdmest.reference": {
        "block_slices",
        "gaussian_mutual_information",
        "gaussian_total_correlation",
        "gaussian_w2_dependency",
        "wasserstein_dependency",
    },
    "mdmest.tasks": {
        "JUDGING_SEEDS",
        "MixtureTask",
        "RANDOM_STRUCTURES",
        "RandomTask",
        "SECOND_JUDGING_SEEDS",
        "TUNING_SEEDS",
        "draw_seeds",
        "judging_draw",
        "random_task",
        "random_tasks",
        "AdditiveNoiseTask",
        "GaussianMixtureTask",
        "GaussianTask",
        "StudentTTask",
        "TRANSFORMS",
        "Task",
        "Transform",
        "TransformedTask",
        "additive_noise_mutual_information",
        "correlated_pair",
        "equicorrelation_tc",
        "gaussian_task_with_tc",
        "low_rank_gaussian_task",
        "random_spectrum_gaussian_task",
        "sparse_gaussian_task",
        "spiral_transform",
        "student_t_total_correlation",
        "task_suite",
    },
    "mdmest.transforms": {
        "COPULA_TRANSFORMS",
        "CommonScale",
        "GaussianCopula",
        "INVARIANT_TRANSFORMS",
        "RadialGaussian",
        "TRANSFORMS",
        "fit_common_scale",
        "fit_per_view",
        "gaussian_misfit",
    },
    "mdmest.io": {
        "atomic_open",
        "atomic_write_text",
    },
    "mdmest.cli": {
        "SUBCOMMANDS",
        "main",
    },
    "mdmest.experiments.gaussian": {
        "FULL",
        "GaussianConfig",
        "MEASURE_LABELS",
        "QUICK",
        "format_table",
        "make_tasks",
        "plot_summary",
        "run_experiment",
        "summarize",
        "write_results",
    },
    "mdmest.fusion": {
        "FusionModel",
        "FusionOutput",
        "MODALITIES",
    },
    "mdmest.fusion.base": {
        "FusionModel",
        "FusionOutput",
        "MODALITIES",
    },
    "mdmest.fusion.data": {
        "DatasetFormatError",
        "FORMATS",
        "MultimodalDataset",
        "PickleReadError",
        "Segment",
        "SplitData",
        "UnsafePickleError",
        "collate",
        "load_dataset",
        "load_for_training",
        "make_loader",
        "make_synthetic",
        "split_dataset",
        "write_dataset",
        "write_synthetic",
    },
    "mdmest.fusion.metrics": {
        "METRIC_NAMES",
        "acc2_ratio",
        "regression_metrics",
    },
    "mdmest.fusion.models": {
        "EFLSTM",
        "LMF",
        "MAGBert",
        "MAGXLNet",
        "MFN",
        "MLPFusion",
        "MLPLinearFusion",
        "MODEL_REGISTRY",
        "PresetFusionModel",
        "TFN",
        "build_model",
        "default_training",
        "model_class",
        "model_names",
    },
    "mdmest.fusion.training": {
        "CHECKPOINT_FORMAT",
        "CHECKPOINT_VERSION",
        "CheckpointError",
        "LOWER_IS_BETTER",
        "PENALTIES",
        "PRESETS",
        "Predictions",
        "SELECTABLE_METRICS",
        "TASK_LOSSES",
        "TrainConfig",
        "Trainer",
        "build_model",
        "check_device",
        "default_training",
        "drop_modalities",
        "drop_ratios",
        "is_better",
        "model_names",
        "predict",
        "read_checkpoint",
        "rng_state",
        "save_checkpoint",
        "seed_everything",
        "set_rng_state",
        "train",
        "write_json",
        "write_scores_csv",
    },
    "mdmest.distributed": {
        "all_reduce_mean_grads",
        "CrossRankSampler",
        "all_reduce_sum",
        "batch_sizes",
        "gather_rows",
        "is_distributed",
    },
    "mdmest.streaming": {
        "StreamingBound",
    },
    "mdmest.fusion.reproduce": {
        "ALL_MODELS",
        "GridSpec",
        "KNOWN_MODELS",
        "MIN_SEEDS",
        "ReproduceError",
        "RunCache",
        "RunConfig",
        "WEIGHT_GRID",
        "reproduce",
        "run_grid",
        "train_run",
    },
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_each_public_module_exports_exactly_its_pinned_names(module):
    mod = importlib.import_module(module)
    assert set(mod.__all__) == PUBLIC[module], sorted(set(mod.__all__) ^ PUBLIC[module])
    assert len(mod.__all__) == len(set(mod.__all__)), "a name is listed twice in __all__"
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ names {name}, which it does not define"


def _public_modules():
    for info in pkgutil.walk_packages(mdmest.__path__, "mdmest."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        yield info.name


def test_every_public_module_has_an_all_and_is_pinned():
    names = sorted(_public_modules())
    missing_all = [n for n in names if not hasattr(importlib.import_module(n), "__all__")]
    assert not missing_all, f"public modules without __all__: {missing_all}"
    # Submodules of a pinned package may re-export through it; the packages themselves are pinned.
    unpinned = [n for n in names if n not in PUBLIC and n.rsplit(".", 1)[0] not in PUBLIC]
    assert not unpinned, f"public modules neither pinned nor inside a pinned package: {unpinned}"


def test_architecture_names_are_exported():
    """The names ARCHITECTURE.md promises, wherever the modules above put them."""
    promised = {
        "mdmest": ["TotalCorrelation", "FTotalCorrelation", "WassersteinDependency",
                   "DependencyMeasure", "make_measure", "estimate", "EstimateResult"],
        "mdmest.critics": ["MLPCritic", "paper_critic"],
        "mdmest.sampling": ["product_of_marginals"],
        "mdmest.functional": ["dv_bound", "f_bound", "wasserstein_bound", "gradient_penalty"],
        "mdmest.reference": ["gaussian_mutual_information", "gaussian_total_correlation",
                             "wasserstein_dependency"],
        "mdmest.tasks": ["GaussianTask"],
        "mdmest.fusion.data": ["load_dataset", "make_synthetic", "collate"],
        "mdmest.fusion.metrics": ["regression_metrics"],
        "mdmest.fusion.models": ["EFLSTM", "TFN", "LMF", "MFN", "MAGBert", "MAGXLNet"],
        "mdmest.fusion.training": ["Trainer", "TrainConfig"],
    }  # fmt: skip
    for module, names in promised.items():
        for name in names:
            assert name in PUBLIC[module], f"{module}.{name}"


def test_measures_subclass_the_base():
    for cls in (mdmest.TotalCorrelation, mdmest.FTotalCorrelation, mdmest.WassersteinDependency):
        assert issubclass(cls, mdmest.DependencyMeasure)


def test_import_mdmest_pulls_no_extras():
    code = (
        "import sys, mdmest, mdmest.fusion, mdmest.fusion.models; "
        "bad = [m for m in ('transformers', 'sklearn', 'h5py', 'matplotlib') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
