"""Shared fixtures: a generated miniature category and a tiny trained run, made once per session.

Features are cached in a per-session temporary folder (ADLIB_CACHE), never in the user's cache.
"""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _feature_cache(tmp_path_factory):
    os.environ["ADLIB_CACHE"] = str(tmp_path_factory.mktemp("feature-cache"))
    os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def mini(tmp_path_factory):
    from adlib.data import make_mini_mvtec
    return make_mini_mvtec(tmp_path_factory.mktemp("data") / "mini", seed=0, size=128, n_train=24,
                           n_test_good=8, n_test_per_defect=4)


@pytest.fixture(scope="session")
def tiny_run(mini, tmp_path_factory):
    from adlib import RunConfig, train_run
    cfg = RunConfig(data=str(mini), image_size=128, iters=30, batch_size=8, checkpoint_every=10, model="mlp",
                    model_kwargs=dict(hidden=64, depth=2))
    return train_run(cfg, tmp_path_factory.mktemp("runs") / "tiny", progress=False)


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a test module, restored afterwards: on a busy 2-core machine torch's 2-thread
    pool makes each small op wait (an AdamW step of the tiny mlp took ~1 s instead of ~10 ms)."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
