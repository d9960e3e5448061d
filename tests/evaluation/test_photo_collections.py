"""Photo collections from a tiny synthetic LFW-shaped tree: deterministic, truth.json says what was written, boxes
inside the photos and on the faces; face matching and the identify/cluster scores on hand-made cases."""

import dataclasses
import json
import re

import cv2
import numpy as np
import pytest

from facenet_tf.evaluation import photo_collections as P

SIZE = 100  # the synthetic LFW images are SIZE x SIZE
PEOPLE = [f"Person_{chr(ord('A') + i)}" for i in range(6)]  # 8-9 images: known people
STRANGERS = [f"Stranger_{i}" for i in range(4)]  # 2-5 images: strangers
COUNTS = {**{name: 8 + i % 2 for i, name in enumerate(PEOPLE)}, **{name: 2 + i for i, name in enumerate(STRANGERS)},
          "Once": 1}  # one image: neither


@pytest.fixture(scope="module")
def lfw_tree(tmp_path_factory):
    """An LFW-shaped tree of COUNTS images per person, each image dark with a bright face box where
    ``LFW_FACE_BOX`` says; every image differs (a number written in the corner)."""
    root = tmp_path_factory.mktemp("lfw")
    box = np.round(P.face_box((SIZE, SIZE))).astype(int)
    for p, (name, count) in enumerate(COUNTS.items()):
        (root / name).mkdir()
        for i in range(count):
            image = np.full((SIZE, SIZE, 3), 40, np.uint8)
            image[box[1]:box[3], box[0]:box[2]] = (230, 230 - 5 * p, 220)
            cv2.putText(image, str(i), (2, 10), cv2.FONT_HERSHEY_PLAIN, 0.7, (60, 60, 60))
            cv2.imwrite(str(root / name / f"{name}_{i + 1:04d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return root


def small(spec, **changes):
    return dataclasses.replace(spec, people=3, strangers=2, **changes)


SPECS = {s.name: small(s) for s in P.collection_specs()}


def build(lfw_tree, folder, spec, seed=0):
    people = P.list_people(lfw_tree)
    return P.build_collection(spec, {name: people[name] for name in PEOPLE[:spec.people]}, lfw_tree, folder,
                              seed=seed, strangers={name: people[name] for name in STRANGERS[:spec.strangers]})


def test_list_people_keeps_those_with_enough_images(lfw_tree):
    assert list(P.list_people(lfw_tree, min_images=8)) == PEOPLE
    people = P.list_people(lfw_tree)
    assert sorted(people) == sorted(COUNTS) and {n: len(f) for n, f in people.items()} == COUNTS
    assert people["Person_B"][:2] == ["Person_B/Person_B_0001.jpg", "Person_B/Person_B_0002.jpg"]
    with pytest.raises(FileNotFoundError):
        P.list_people(lfw_tree / "nowhere")


def test_assign_people_is_seeded_and_disjoint():
    people = {f"n{i:02d}": 8 + i % 5 for i in range(30)} | {f"s{i:02d}": 2 + i % 6 for i in range(20)} | {"one": 1}
    specs = [dataclasses.replace(s, people=3, strangers=2) for s in P.collection_specs()]
    first = P.assign_people(people, specs, seed=1)
    assert first == P.assign_people(dict(reversed(people.items())), specs, seed=1)  # input order does not matter
    assert first != P.assign_people(people, specs, seed=2)
    everyone = [n for group in first.values() for kind in ("known", "strangers") for n in group[kind]]
    assert len(everyone) == len(set(everyone)) == 2 * len(specs) * 5  # disjoint between collections and sets
    assert all(people[n] >= 8 for g in first.values() for n in g["known"])
    assert all(2 <= people[n] < 8 for g in first.values() for n in g["strangers"])
    with pytest.raises(ValueError, match="known people needed"):
        P.assign_people(dict(list(people.items())[:10]), specs, seed=1)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_builds_are_deterministic(lfw_tree, tmp_path, name):
    build(lfw_tree, tmp_path / "a", SPECS[name])
    build(lfw_tree, tmp_path / "b", SPECS[name])
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for file in files:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    build(lfw_tree, tmp_path / "c", SPECS[name], seed=1)
    assert (tmp_path / "c" / P.TRUTH_FILE).read_bytes() != (tmp_path / "a" / P.TRUTH_FILE).read_bytes()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_truth_describes_what_was_written(lfw_tree, tmp_path, name):
    spec = SPECS[name]
    truth = build(lfw_tree, tmp_path / "c", spec)
    assert truth == P.load_truth(tmp_path / "c") == json.loads((tmp_path / "c" / P.TRUTH_FILE).read_text())
    files = sorted(p.name for p in (tmp_path / "c").iterdir() if p.name != P.TRUTH_FILE)
    assert files == sorted(p["file"] for p in truth["photos"])
    assert all(re.fullmatch(r"photo_\d{4}\.jpg", f) for f in files)  # names leak nothing
    people = P.list_people(lfw_tree)
    assert sorted(truth["people"]) == sorted(PEOPLE[:spec.people] + STRANGERS[:spec.strangers])
    assert sorted(n for n, p in truth["people"].items() if p["unknown"]) == STRANGERS[:spec.strangers]
    used = []
    for photo in truth["photos"]:
        image = cv2.imread(str(tmp_path / "c" / photo["file"]), cv2.IMREAD_UNCHANGED)
        assert image.shape[:2] == (photo["height"], photo["width"])
        assert (image.ndim == 2) == photo["degradations"]["gray"]
        assert 1 <= len(photo["faces"]) <= 2
        assert len({f["identity"] for f in photo["faces"]}) == len(photo["faces"])  # two faces: two people
        for face in photo["faces"]:
            assert face["source"] in people[face["identity"]]
            used.append(face["source"])
    assert len(used) == len(set(used))  # every source image once
    for name_, person in truth["people"].items():
        assert len(person["enrol"]) == (0 if person["unknown"] else 3) and set(person["enrol"]) <= set(people[name_])
        assert not set(person["enrol"]) & set(used)  # enrolment images never appear in a photo
        assert person["photos"] == sum(u.startswith(name_ + "/") for u in used) >= 1


@pytest.mark.parametrize("name", sorted(SPECS))
def test_boxes_are_inside_the_photos_and_on_the_faces(lfw_tree, tmp_path, name):
    spec = dataclasses.replace(SPECS[name], people=6, strangers=4, p_lighting=0.0, p_gray=0.0, jpeg_quality=(95, 95),
                               scale=(0.6, 1.0))
    truth = build(lfw_tree, tmp_path / "c", spec)
    layouts = set()
    for photo in truth["photos"]:
        image = cv2.imread(str(tmp_path / "c" / photo["file"]), cv2.IMREAD_GRAYSCALE).astype(float)
        layouts.add(photo["degradations"]["layout"])
        for face in photo["faces"]:
            x1, y1, x2, y2 = face["box"]
            assert 0 <= x1 < x2 <= photo["width"] and 0 <= y1 < y2 <= photo["height"]
            inside = image[round(y1) + 3:round(y2) - 3, round(x1) + 3:round(x2) - 3]
            assert inside.mean() > 190, (photo["file"], face)  # the bright face patch is where the box says
            below = image[round(y2) + 3:round(y2) + 6, round(x1) + 3:round(x2) - 3]
            if below.size and not photo["degradations"].get("pad") and "side" not in photo["degradations"]["layout"]:
                assert below.mean() < 120, (photo["file"], face)  # and no further
    assert len(layouts) >= 2  # the recipes vary the layout


def test_build_collections_reuses_a_matching_folder(lfw_tree, tmp_path):
    specs = [dataclasses.replace(SPECS["web"], people=2, strangers=1),
             dataclasses.replace(SPECS["small_jpeg"], people=1, strangers=1)]
    folders = P.build_collections(lfw_tree, tmp_path, seed=3, specs=specs)
    assert sorted(f.name for f in folders.values()) == ["check_small_jpeg", "check_web", "select_small_jpeg",
                                                        "select_web"]
    assert all(not set(P.load_truth(folders[("select", s.name)])["people"])
               & set(P.load_truth(folders[("check", s.name)])["people"]) for s in specs)
    digest = P.collection_digest(folders[("select", "web")])
    stamp = (folders[("select", "web")] / P.TRUTH_FILE).stat().st_mtime_ns
    assert P.build_collections(lfw_tree, tmp_path, seed=3, specs=specs) == folders
    assert (folders[("select", "web")] / P.TRUTH_FILE).stat().st_mtime_ns == stamp  # not rebuilt
    (folders[("select", "web")] / P.TRUTH_FILE).write_text("{}")
    P.build_collections(lfw_tree, tmp_path, seed=3, specs=specs)  # an unreadable truth is rebuilt, the same
    assert P.collection_digest(folders[("select", "web")]) == digest
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no building folder left


def test_match_faces():
    truth = [[10, 10, 50, 60], [100, 10, 140, 60]]
    assert P.match_faces([[102, 12, 141, 58], [11, 9, 49, 61]], truth) == [1, 0]
    assert P.match_faces([[200, 10, 240, 60]], truth) == [None]            # elsewhere: a false detection
    assert P.match_faces([[28, 33, 34, 38]], truth) == [None]              # on the face but far too small
    assert P.match_faces([[8, 12, 58, 62], [11, 10, 49, 60]], truth) == [None, 0]  # one-to-one, closest wins
    assert P.match_faces([[40, 10, 80, 60]], truth) == [None]              # centre 30 px off a 45 px face
    assert P.match_faces([], truth) == [] and P.match_faces([[0, 0, 5, 5]], []) == [None]


def test_label_detections(lfw_tree, tmp_path):
    truth = build(lfw_tree, tmp_path / "c", dataclasses.replace(SPECS["pairs_side_by_side"], people=4, strangers=3))
    detections, expected = [], []
    for photo in truth["photos"]:
        for face in photo["faces"]:
            x1, y1, x2, y2 = face["box"]
            detections.append((str(tmp_path / "c" / photo["file"]), (x1 + 2, y1 - 1, x2 + 1, y2 + 2)))
            expected.append(face["identity"])
    first = truth["photos"][0]
    detections.append((first["file"], (first["width"] - 6, 0, first["width"], 6)))  # a speck in a corner
    expected.append(None)
    labels, counts = P.label_detections(truth, detections)
    assert labels == expected
    assert counts == {"truth_faces": len(expected) - 1, "found": len(expected) - 1, "other": 1}
    with pytest.raises(ValueError, match="not in the collection"):
        P.label_detections(truth, [("elsewhere.jpg", (0, 0, 10, 10))])


def test_cluster_labels_give_unmatched_faces_labels_of_their_own():
    labels = P.cluster_labels(["a", None, "a", None])
    assert labels[0] == labels[2] and len(set(labels)) == 3


def test_identify_scores_and_the_chosen_threshold():
    identities = ["a", "b"]
    distances = np.array([[0.3, 1.5],   # a: right, close
                          [1.0, 0.9],   # a: wrong (b nearer)
                          [1.6, 0.7],   # b: right
                          [0.8, 1.9],   # unknown person c, accepted from 0.8 on
                          [1.3, 1.2]])  # unmatched detection
    labels = ["a", "a", "b", "c", None]
    scores = P.identify_scores(identities, distances, labels, [0.5, 0.75, 1.0])
    assert (scores.n_known, scores.n_unknown, scores.n_other) == (3, 1, 1)
    assert scores.rank1 == pytest.approx(2 / 3)
    assert scores.accuracy.tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert scores.far.tolist() == [0.0, 0.0, 1.0] and scores.other_accepted.tolist() == [0.0, 0.0, 0.0]
    assert scores.at(0.75) == {"accuracy": pytest.approx(2 / 3), "far": 0.0}
    assert P.choose_identify_default([scores]) == (0.75, pytest.approx(2 / 3), 0.0)
    pooled = P.pool([scores, scores])
    assert (pooled.n_known, pooled.rank1, pooled.far.tolist()) == (6, pytest.approx(2 / 3), [0.0, 0.0, 1.0])


def test_clustering_sweep_and_the_chosen_candidate():
    angles = np.deg2rad([0, 5, 10, 120, 125, 240])
    embeddings = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    truth = np.array(["a", "a", "a", "b", "b", "c"])
    thresholds = [0.1, 0.5, 1.0, 3.5]
    sweep = P.clustering_sweep(embeddings, truth, thresholds)
    assert sorted({a for a, _ in sweep}) == sorted(P.CLUSTER_ALGORITHMS) and len(sweep) == 16
    assert sweep[("average", 0.1)].f1 == 1.0 and sweep[("single", 3.5)].n_clusters == 1
    assert np.array_equal(P.cluster(embeddings, "average", 0.1), [0, 0, 0, 1, 1, 2])
    choice, f1 = P.choose_cluster_default({"x": sweep, "y": sweep})
    assert f1 == 1.0 and choice[0] == "average"  # average first among the tied algorithms
    assert choice[1] in (0.1, 0.5, 1.0)


def test_specs_are_checked_and_described():
    spec = P.collection_specs()[2]
    assert "JPEG quality 20-50" in spec.summary() and "scale 0.3-0.5×" in spec.summary()
    assert spec.to_dict() == json.loads(json.dumps(spec.to_dict()))  # as a truth.json keeps it
    with pytest.raises(ValueError, match="lighting"):
        dataclasses.replace(spec, lighting="harsh")
    with pytest.raises(ValueError, match="p_crop"):
        dataclasses.replace(spec, p_crop=0.8, p_pad=0.5)
