"""The embedded ELPV solar-cell set: counts, the seeded 70 / 10 / 20 split, the dev / test halves, labels."""
from pathlib import Path

import pytest

from adlib.data import load_elpv, load_spec
from adlib.errors import AdlibError


@pytest.mark.parametrize("kind,n_normal,n_bad", [("mono", 588, 313), ("poly", 920, 402)])
def test_elpv_counts_and_split(kind, n_normal, n_bad):
    data = load_spec(f"elpv:{kind}")
    assert data.spec == f"elpv:{kind}" and data.has_masks is False
    normals = data.train + data.val + [s for s in data.test if s.label == 0]
    assert len(normals) == n_normal
    assert all(s.label == 0 for s in data.train + data.val)
    assert sum(s.label for s in data.test) == n_bad
    tr, va, te = ({s.path for s in part} for part in (data.train, data.val, data.test))
    assert len(tr) == len(data.train) and len(va) == len(data.val) and len(te) == len(data.test)
    assert not tr & va and not tr & te and not va & te
    # 70 / 10 / 20 of the normals
    assert abs(len(data.train) - 0.7 * n_normal) <= 1
    assert abs(len(data.val) - 0.1 * n_normal) <= 1
    assert abs((len(data.test) - n_bad) - 0.2 * n_normal) <= 1
    assert "CC BY-NC-SA" in data.info["license"]


@pytest.mark.parametrize("kind", ["mono", "poly"])
def test_elpv_dev_and_test_protocols_halve_the_test_part_and_keep_train_and_val(kind):
    full, dev, test = (load_spec(f"elpv:{kind}{p}") for p in ("", ":dev", ":test"))
    assert (dev.spec, test.spec) == (f"elpv:{kind}:dev", f"elpv:{kind}:test")
    for d in (dev, test):  # one run serves both: same training and validation files
        assert [s.path for s in d.train] == [s.path for s in full.train]
        assert [s.path for s in d.val] == [s.path for s in full.val]
    a, b = {s.path for s in dev.test}, {s.path for s in test.test}
    assert not a & b and a | b == {s.path for s in full.test}  # disjoint halves of the whole test part
    for y in (0, 1):  # each class halved on its own
        n = sum(s.label == y for s in full.test)
        assert {sum(s.label == y for s in d.test) for d in (dev, test)} <= {n // 2, n - n // 2}
    # seeded: the same halves on every call
    assert {s.path for s in load_spec(f"elpv:{kind}:dev").test} == a


@pytest.mark.parametrize("spec", ["elpv:poly:final", "elpv:dev", "elpv:poly:dev:x"])
def test_unknown_elpv_protocol_is_one_clear_line(spec):
    with pytest.raises(AdlibError) as e:
        load_spec(spec)
    assert spec in str(e.value) and "elpv:poly:dev" in str(e.value)


def test_elpv_labels_match_csv():
    import elpv_dataset
    root = Path(elpv_dataset.__file__).parent / "data"
    prob = {str(root / n): float(p) for n, p, _ in (l.split() for l in (root / "labels.csv").read_text().splitlines())}
    data = load_elpv("mono")
    for s in data.train + data.val + data.test:
        assert prob[s.path] == (1.0 if s.label else 0.0)  # uncertain cells (p = 1/3, 2/3) are left out


def test_elpv_split_is_reproducible_and_seeded():
    a, b, c = load_elpv("mono", split_seed=0), load_elpv("mono", split_seed=0), load_elpv("mono", split_seed=1)
    assert a.split_record() == b.split_record()
    assert [s.path for s in a.train] != [s.path for s in c.train]
    assert {s.path for s in a.train + a.val + a.test} == {s.path for s in c.train + c.val + c.test}
    assert a.split_record()["split_seed"] == 0 and c.split_record()["split_seed"] == 1


def test_elpv_all_is_union_of_mono_and_poly():
    mono, poly, both = load_spec("elpv:mono", 5), load_spec("elpv:poly", 5), load_spec("elpv:all", 5)
    for part in ("train", "val", "test"):
        got = [s.path for s in getattr(both, part)]
        assert len(got) == len(set(got))
        assert set(got) == {s.path for s in getattr(mono, part) + getattr(poly, part)}
    assert sum(s.label for s in both.test) == 313 + 402
    assert len(both.train) + len(both.val) + sum(1 - s.label for s in both.test) == 588 + 920
