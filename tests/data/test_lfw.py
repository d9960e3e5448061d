"""LFW layout and protocol files: synthetic trees and pairs files (including malformed ones), then the real
files from ../shared (``lfw_root`` fixture; skipped where LFW is absent)."""

import hashlib
import itertools

import numpy as np
import pytest

from facenet_tf.data import lfw

# ------------------------------------------------------------------------------------------- synthetic LFW

PEOPLE = {"Alice_A": 3, "Bob_B": 2, "Carol_C": 1, "Dan_D": 2, "Eve_E": 12}


@pytest.fixture()
def tree(tmp_path):
    """A small LFW root: <root>/lfw-deepfunneled/<Name>/<Name>_NNNN.jpg (empty files) plus stray entries."""
    images = tmp_path / "lfw-deepfunneled"
    for name, count in PEOPLE.items():
        (images / name).mkdir(parents=True)
        for k in range(1, count + 1):
            (images / name / f"{name}_{k:04d}.jpg").write_bytes(b"")
    (images / "Empty_Folder").mkdir()
    (images / "Alice_A" / "notes.txt").write_text("not an image")
    (images / "README").write_text("a file at the top level")
    return tmp_path


# 2 folds x (2 same + 2 different); line numbers: header 1, fold 0 = lines 2-5, fold 1 = lines 6-9
VIEW2_TEXT = """2\t2
Alice_A\t1\t2
Bob_B\t1\t2
Alice_A\t3\tCarol_C\t1
Bob_B\t2\tDan_D\t1
Eve_E\t1\t10
Eve_E\t2\t12
Eve_E\t3\tDan_D\t2
Carol_C\t1\tEve_E\t11
"""

VIEW1_TEXT = "1\nAlice_A\t1\t3\nBob_B\t1\tEve_E\t5\n"


def write(root, text, name="pairs.txt"):
    path = root / name
    path.write_text(text)
    return path


def test_image_path_is_zero_padded(tmp_path):
    assert lfw.image_path(tmp_path, "Eve_E", 12) == tmp_path / "Eve_E" / "Eve_E_0012.jpg"
    assert lfw.image_path("x", "A", 1234).name == "A_1234.jpg"
    with pytest.raises(ValueError, match="start at 1"):
        lfw.image_path(tmp_path, "A", 0)


def test_parse_view2_style(tree):
    pairs = lfw.parse_pairs(write(tree, VIEW2_TEXT))
    images = tree / "lfw-deepfunneled"
    assert pairs.images_dir == images
    assert (pairs.n_folds, pairs.pairs_per_fold, len(pairs)) == (2, 2, 8)
    assert (pairs.n_same, pairs.n_different) == (4, 4)
    np.testing.assert_array_equal(pairs.is_same, [True, True, False, False] * 2)
    np.testing.assert_array_equal(pairs.folds, [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(pairs.line_numbers, np.arange(2, 10))
    assert pairs.paths_a[0] == images / "Alice_A" / "Alice_A_0001.jpg"
    assert pairs.paths_b[0] == images / "Alice_A" / "Alice_A_0002.jpg"
    assert pairs.paths_a[2] == images / "Alice_A" / "Alice_A_0003.jpg"
    assert pairs.paths_b[2] == images / "Carol_C" / "Carol_C_0001.jpg"
    assert pairs.paths_b[4] == images / "Eve_E" / "Eve_E_0010.jpg"
    assert pairs.names_b[7] == "Eve_E" and pairs.numbers_b[7] == 11
    assert pairs.identities == {"Alice_A", "Bob_B", "Carol_C", "Dan_D", "Eve_E"}
    assert pairs.fold_identities(0) == {"Alice_A", "Bob_B", "Carol_C", "Dan_D"}
    assert pairs.fold_identities(1) == {"Eve_E", "Dan_D", "Carol_C"}
    with pytest.raises(ValueError, match="fold"):
        pairs.fold_identities(2)


def test_parse_view1_style_and_crlf(tree):
    pairs = lfw.parse_pairs(write(tree, VIEW1_TEXT.replace("\n", "\r\n"), "pairsDevTest.txt"))
    assert (pairs.n_folds, pairs.pairs_per_fold, len(pairs)) == (1, 1, 2)
    np.testing.assert_array_equal(pairs.is_same, [True, False])
    np.testing.assert_array_equal(pairs.folds, [0, 0])
    assert pairs.paths_b[1].name == "Eve_E_0005.jpg"


def test_explicit_images_dir(tree, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    path = write(elsewhere, VIEW1_TEXT)
    pairs = lfw.parse_pairs(path, images_dir=tree / "lfw-deepfunneled")
    assert pairs.paths_a[0] == tree / "lfw-deepfunneled" / "Alice_A" / "Alice_A_0001.jpg"


MALFORMED = [
    # (text, line number, words the message must contain)
    ("", 1, "empty"),
    ("ten\t300\n", 1, "integer"),
    ("2\t2\t2\n", 1, "header"),
    ("0\n", 1, "positive"),
    (VIEW2_TEXT.replace("Bob_B\t1\t2\n", "Bob_B\t1\tDan_D\t2\n"), 3, "same-person line"),
    (VIEW2_TEXT.replace("Bob_B\t2\tDan_D\t1\n", "Bob_B\t2\t1\n"), 5, "different-person line"),
    (VIEW2_TEXT.replace("Eve_E\t2\t12\n", "Eve_E\t2\n"), 7, "3 fields"),
    (VIEW2_TEXT.replace("Eve_E\t1\t10\n", "Eve_E\tone\t10\n"), 6, "integer image number, got 'one'"),
    (VIEW2_TEXT.replace("Carol_C\t1\tEve_E\t11\n", "Carol_C\t1\tEve_E\t0\n"), 9, ">= 1"),
    (VIEW2_TEXT.replace("Alice_A\t1\t2\n", "Alice_A\t-1\t2\n"), 2, ">= 1"),
    (VIEW2_TEXT.rsplit("Carol_C", 1)[0], 8, "ends after 7"),
    (VIEW2_TEXT + "Alice_A\t1\t2\n", 10, "one too many"),
    (VIEW2_TEXT.replace("2\t2\n", "3\t2\n", 1), 9, "= 12 pair lines"),
    (VIEW2_TEXT.replace("Bob_B\t1\t2\n", "\n"), 3, "got 0 fields"),
]


@pytest.mark.parametrize("text, line_number, words", MALFORMED)
def test_malformed_files_name_the_line(tmp_path, text, line_number, words):
    path = write(tmp_path, text, "bad_pairs.txt")
    with pytest.raises(ValueError) as error:
        lfw.parse_pairs(path, images_dir=tmp_path, check_exists=False)
    message = str(error.value)
    assert isinstance(error.value, lfw.PairsFileError)
    assert error.value.line_number == line_number
    assert f"bad_pairs.txt, line {line_number}:" in message
    assert words in message


def test_trailing_blank_lines_are_fine(tree):
    pairs = lfw.parse_pairs(write(tree, VIEW2_TEXT + "\n\n"))
    assert len(pairs) == 8


def test_missing_image(tree):
    path = write(tree, VIEW2_TEXT.replace("Eve_E\t2\t12", "Eve_E\t2\t13"))
    with pytest.raises(FileNotFoundError, match=r"line 7: image '.*Eve_E_0013\.jpg' does not exist"):
        lfw.parse_pairs(path)
    assert len(lfw.parse_pairs(path, check_exists=False)) == 8
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lfw.parse_pairs(tree / "no_such_pairs.txt")


def test_unique_images(tree):
    pairs = lfw.parse_pairs(write(tree, VIEW2_TEXT))
    unique = lfw.unique_images(pairs)
    # 16 sides; Bob_B_0002 (lines 3 and 5) and Carol_C_0001 (lines 4 and 9) repeat -> 14 distinct
    assert len(unique) == 14
    assert list(unique.paths) == sorted(set(unique.paths))
    assert [unique.paths[i] for i in unique.index_a] == list(pairs.paths_a)
    assert [unique.paths[i] for i in unique.index_b] == list(pairs.paths_b)


def test_list_identities(tree):
    identities = lfw.list_identities(tree / "lfw-deepfunneled")
    assert list(identities) == sorted(PEOPLE)  # no Empty_Folder, no README
    assert {name: len(images) for name, images in identities.items()} == PEOPLE
    assert identities["Eve_E"][-1].name == "Eve_E_0012.jpg"
    assert identities["Eve_E"] == sorted(identities["Eve_E"])
    assert all(path.suffix == ".jpg" for images in identities.values() for path in images)


def test_list_identities_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lfw.list_identities(tmp_path / "missing")
    (tmp_path / "empty" / "Nobody").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no"):
        lfw.list_identities(tmp_path / "empty")


def test_training_identities(tree):
    images = tree / "lfw-deepfunneled"
    view1 = write(tree, VIEW1_TEXT, "pairsDevTest.txt")  # Alice_A, Bob_B, Eve_E
    split = lfw.training_identities(images, [view1])
    assert list(split.identities) == ["Carol_C", "Dan_D"]
    assert split.excluded == {"Alice_A", "Bob_B", "Eve_E"}
    assert split.excluded_not_found == frozenset()
    assert split.counts() == {
        "identities_total": 5,
        "images_total": 20,
        "identities_excluded": 3,
        "identities": 2,
        "images": 3,
        "identities_with_2_or_more_images": 1,
        "identities_with_10_or_more_images": 0,
    }
    assert "2 of 5 identities (3 of 20 images)" in split.summary()
    # all five people appear in the View 2 style file: different-pair names count too (Carol_C only there)
    view2 = lfw.parse_pairs(write(tree, VIEW2_TEXT))
    assert lfw.training_identities(images, [view2]).n_identities == 0
    # a pre-listed tree works the same; no files excludes nothing
    listed = lfw.list_identities(images)
    assert lfw.training_identities(listed, []).counts()["identities_with_10_or_more_images"] == 1
    assert lfw.training_identities(listed, [view1]).identities == split.identities


def test_load_pairs_by_name(tree):
    write(tree, VIEW2_TEXT, "pairs.txt")
    write(tree, VIEW1_TEXT, "pairsDevTest.txt")
    assert len(lfw.load_pairs("view2", root=tree)) == 8
    view1 = lfw.load_pairs("view1_test", root=tree)
    assert view1.pairs_per_fold == 1 and view1.images_dir == tree / "lfw-deepfunneled"
    assert len(lfw.load_pairs(tree / "pairs.txt")) == 8
    with pytest.raises(ValueError, match=r"view1_test.*view1_train.*view2"):
        lfw.load_pairs("view3", root=tree)
    with pytest.raises(FileNotFoundError):
        lfw.load_pairs("view1_train", root=tree)  # pairsDevTrain.txt is not there


def test_load_pairs_fold_selection(tree):
    write(tree, VIEW2_TEXT, "pairs.txt")
    full = lfw.load_pairs("view2", root=tree)
    first = lfw.load_pairs("view2:folds=1", root=tree)
    assert len(first) == int((full.folds == 0).sum()) and set(first.folds.tolist()) == {0}
    assert first.identities == full.fold_identities(0)
    both = lfw.load_pairs("view2:folds=1-2", root=tree)
    assert len(both) == len(full) and both.identities == full.identities
    with pytest.raises(ValueError, match="folds 1..2"):
        lfw.load_pairs("view2:folds=2-3", root=tree)
    with pytest.raises(ValueError, match="1 <= A <= B"):
        lfw.load_pairs("view2:folds=2-1", root=tree)



def test_load_pairs_path_reads_the_tree_beside_it_not_the_default(tree, tmp_path_factory, monkeypatch):
    """A pairs file given by path resolves its images in the tree beside it, never in the default LFW root."""
    default = tmp_path_factory.mktemp("default_lfw")
    (default / "lfw-deepfunneled" / "Alice_A").mkdir(parents=True)
    monkeypatch.setenv("FACENET_TF_LFW_DIR", str(default))
    path = write(tree, VIEW2_TEXT, "my_pairs.txt")
    pairs = lfw.load_pairs(path)
    assert pairs.images_dir == tree / "lfw-deepfunneled"
    assert pairs.paths_a[0] == tree / "lfw-deepfunneled" / "Alice_A" / "Alice_A_0001.jpg"
    # the images may also sit directly beside the pairs file
    flat = tmp_path_factory.mktemp("flat")
    (tree / "lfw-deepfunneled").rename(flat / "images")
    moved = write(flat / "images", VIEW2_TEXT, "pairs.txt")
    assert lfw.load_pairs(moved).images_dir == flat / "images"


def test_load_pairs_path_without_a_tree_beside_it_refuses(tree, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FACENET_TF_LFW_DIR", str(tree))  # a default tree that has every image: never used
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    path = write(elsewhere, VIEW2_TEXT)
    with pytest.raises(FileNotFoundError) as error:
        lfw.load_pairs(path)
    message = str(error.value)
    assert str(path) in message and "--data_dir" in message and str(tree) not in message
    assert "\n" not in message
    # an explicit root is used instead
    assert lfw.load_pairs(path, root=tree).images_dir == tree / "lfw-deepfunneled"
    # only names are wanted: no image is looked for, so no tree is needed
    assert lfw.load_pairs(path, check_exists=False).identities == set(PEOPLE)
    # a tree beside it that has some of the images names the first missing one
    (elsewhere / "Alice_A").mkdir()
    (elsewhere / "Alice_A" / "Alice_A_0001.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"line 2: image '.*Alice_A_0002\.jpg' does not exist"):
        lfw.load_pairs(path)


def test_pairs_file_sha256_is_of_the_bytes_parsed(tree):
    path = write(tree, VIEW2_TEXT)
    pairs = lfw.load_pairs(path)
    assert pairs.sha256 == hashlib.sha256(VIEW2_TEXT.encode()).hexdigest()
    assert pairs.select_folds([1]).sha256 == pairs.sha256


@pytest.mark.parametrize("data, line_number", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8", 1),  # an image given as the pairs file
    (VIEW2_TEXT.encode().replace(b"Bob_B\t1\t2", b"B\xf6b_B\t1\t2"), 3),  # Latin-1 in a text file
])
def test_binary_pairs_file_is_a_pairs_file_error(tmp_path, data, line_number):
    path = tmp_path / "pairs.bin"
    path.write_bytes(data)
    with pytest.raises(lfw.PairsFileError) as error:
        lfw.load_pairs(path, root=tmp_path, check_exists=False)
    assert error.value.line_number == line_number
    assert str(error.value).startswith(f"{path}, line {line_number}: ") and "UTF-8" in str(error.value)


def test_bad_pairs_arguments_are_pairs_errors(tree):
    with pytest.raises(lfw.PairsError, match="no_such.txt"):
        lfw.load_pairs(tree / "no_such.txt")
    with pytest.raises(lfw.PairsError, match="view3"):
        lfw.load_pairs("view3", root=tree)
    write(tree, VIEW2_TEXT, "pairs.txt")
    with pytest.raises(lfw.PairsError, match="folds 1..2"):
        lfw.load_pairs("view2:folds=3", root=tree)


# --------------------------------------------------------------------------------------------- the real LFW


@pytest.fixture(scope="module")
def real(lfw_root):
    """The three real protocol files (every image checked) and the listed image tree."""
    pairs = {name: lfw.load_pairs(name, root=lfw_root) for name in lfw.PAIRS_FILES}
    return pairs, lfw.list_identities(pairs["view2"].images_dir)


def test_real_pairs_counts_and_fold_structure(real):
    pairs, _ = real
    view2, train, test = pairs["view2"], pairs["view1_train"], pairs["view1_test"]
    assert (len(view2), view2.n_folds, view2.pairs_per_fold, view2.n_same) == (6000, 10, 300, 3000)
    assert (len(train), train.n_folds, train.n_same) == (2200, 1, 1100)
    assert (len(test), test.n_folds, test.n_same) == (1000, 1, 500)
    np.testing.assert_array_equal(np.bincount(view2.folds), [600] * 10)
    for fold in range(10):
        block = view2.is_same[view2.folds == fold]
        assert block[:300].all() and not block[300:].any()  # 300 same, then 300 different
    assert all(a == b for a, b, s in zip(view2.names_a, view2.names_b, view2.is_same) if s)
    assert all(a != b for a, b, s in zip(view2.names_a, view2.names_b, view2.is_same) if not s)
    # distinct images to embed, and every one exists (load_pairs checked; spot-check here too)
    assert [len(lfw.unique_images(p)) for p in (view2, train, test)] == [7701, 3443, 1549]
    assert all(p.is_file() for p in lfw.unique_images(test).paths)


def test_real_identity_structure(real):
    pairs, _ = real
    view2, train, test = pairs["view2"], pairs["view1_train"], pairs["view1_test"]
    assert [len(p.identities) for p in (view2, train, test)] == [4281, 2132, 963]
    # the ten View 2 folds are person-disjoint, and so are View 1 train and test
    for a, b in itertools.combinations(range(10), 2):
        assert not view2.fold_identities(a) & view2.fold_identities(b)
    assert not train.identities & test.identities


def test_real_image_tree_matches_names_file(real, lfw_root):
    _, identities = real
    counts = {}
    for line in (lfw_root / "lfw-names.txt").read_text().splitlines():
        name, count = line.split()
        counts[name] = int(count)
    assert {name: len(images) for name, images in identities.items()} == counts
    assert (len(identities), sum(counts.values())) == (5749, 13233)
    assert sum(c >= 2 for c in counts.values()) == 1680 and sum(c >= 10 for c in counts.values()) == 158


def test_real_training_identities(real):
    pairs, identities = real
    view2 = lfw.training_identities(identities, [pairs["view2"]])
    print("excluding View 2:", view2.summary())
    assert view2.excluded == pairs["view2"].identities and not view2.excluded_not_found
    assert not set(view2.identities) & pairs["view2"].identities
    assert view2.counts() == {
        "identities_total": 5749,
        "images_total": 13233,
        "identities_excluded": 4281,
        "identities": 1468,
        "images": 1549,
        "identities_with_2_or_more_images": 52,
        "identities_with_10_or_more_images": 0,
    }
    view1_test = lfw.training_identities(identities, [pairs["view1_test"]])
    print("excluding View 1 test:", view1_test.summary())
    assert not set(view1_test.identities) & pairs["view1_test"].identities
    assert view1_test.counts() == {
        "identities_total": 5749,
        "images_total": 13233,
        "identities_excluded": 963,
        "identities": 4786,
        "images": 10492,
        "identities_with_2_or_more_images": 1262,
        "identities_with_10_or_more_images": 115,
    }


def test_identity_subset_is_seeded_nested_and_rounds_up():
    from facenet_tf.data.lfw import identity_subset

    names = [f"person_{i:04d}" for i in range(4786)]
    quarter, half, whole = (identity_subset(reversed(names), f, seed=0) for f in (0.25, 0.5, 1.0))
    assert (len(quarter), len(half), whole) == (1197, 2393, names)  # ceil(n * fraction), sorted
    assert set(quarter) < set(half) < set(whole)
    assert identity_subset(names, 0.25, seed=0) == quarter  # the input order does not matter
    other = identity_subset(names, 0.25, seed=1)
    assert len(other) == 1197 and other != quarter and set(other) < set(identity_subset(names, 0.5, seed=1))
    assert len(identity_subset(names[:100], 0.29)) == 29 and len(identity_subset(names[:3], 0.01)) == 1
    for bad in (0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="--identity_fraction: expected a fraction in"):
            identity_subset(names, bad)
