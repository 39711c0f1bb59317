import numpy as np
import pytest

from tinycdaae.data import synthetic as syn
from tinycdaae.data.labels import AUS, EMOTIONS
from tinycdaae.data.pairs import split

N_PEOPLE = 12


@pytest.fixture(scope="module")
def people():
    return syn.sample_identities(N_PEOPLE, seed=0)


def _emotion_faces(people, n):
    """(n, 8, 3, 32, 32): each of the first n people with the 8 emotions, frontal."""
    aus, smirk = syn.expression_from_label(np.eye(len(EMOTIONS)))
    rows = np.repeat(np.arange(n), len(EMOTIONS))
    faces = syn.render_faces(syn.take(people, rows), np.tile(aus, (n, 1)), None, np.tile(smirk, n))
    return faces.reshape(n, len(EMOTIONS), 3, 32, 32)


def test_render_is_deterministic_and_in_range(people):
    rng = np.random.default_rng(0)
    aus = rng.uniform(0, 1, (N_PEOPLE, 12)).astype(np.float32)
    gaze = rng.integers(0, 3, N_PEOPLE)
    a = syn.render_faces(people, aus, gaze)
    b = syn.render_faces(syn.sample_identities(N_PEOPLE, seed=0), aus.copy(), gaze.copy())
    assert a.shape == (N_PEOPLE, 3, 32, 32) and a.dtype == np.float32
    assert np.array_equal(a, b)                                         # bit-identical
    assert a.min() >= -1 and a.max() <= 1


def test_identity_depends_only_on_index_and_seed():
    few, many = syn.sample_identities(20, seed=5), syn.sample_identities(200, seed=5)
    one = syn.identity_params([17], seed=5)
    for key in few:
        assert np.array_equal(few[key][17], many[key][17]) and np.array_equal(few[key][17], one[key][0])
    other_seed = syn.sample_identities(20, seed=6)
    assert not np.array_equal(few["skin"], other_seed["skin"])


def test_identities_look_different():
    n = 300
    many = syn.sample_identities(n, seed=0)
    faces = syn.render_faces(many, np.zeros((n, 12), np.float32)).reshape(n, -1)   # (n, 3072)
    squared = (faces * faces).sum(axis=1)
    rms = np.sqrt(np.maximum(squared[:, None] + squared[None] - 2 * faces @ faces.T, 0) / 3072)
    rms[np.arange(n), np.arange(n)] = np.inf                                         # (n, n)
    assert rms.min() > 0.08                       # even the closest two are clearly different
    assert len(np.unique(many["hair_style"])) == len(syn.HAIR_STYLES)
    assert 0.1 < many["glasses"].mean() < 0.4 and len(np.unique(many["beard"])) == len(syn.BEARD_STYLES)


@pytest.mark.parametrize("random_aus", [False, True])
def test_windows_change_nothing(random_aus):
    """The speed trick (drawing each part only inside its window) is exact. chunk=1 gives every
    face its own, tightest windows, so a window too small for any one person shows up."""
    n = 120
    rng = np.random.default_rng(1)
    people = syn.sample_identities(n, seed=4)
    aus = rng.uniform(0, 1, (n, 12)).astype(np.float32) * random_aus
    aus[::2] = np.round(aus[::2])                     # extremes: every AU either off or at full
    gaze, smirk = rng.integers(0, 3, n), rng.uniform(0, 1, n) * random_aus
    fast = syn.render_faces(people, aus, gaze, smirk, chunk=1)
    full = syn.render_faces(people, aus, gaze, smirk, use_windows=False)
    assert np.array_equal(fast, full)
    assert np.array_equal(syn.render_faces(people, aus, gaze, smirk), full)   # chunks of 16


def test_expression_moves_only_the_face_regions_and_keeps_identity_colours(people):
    rng = np.random.default_rng(2)
    neutral = syn.render_faces(people, np.zeros((N_PEOPLE, 12), np.float32))
    moving = syn.moving_mask(people)                                   # (n, 32, 32) bool
    assert moving.mean() < 0.6                                         # a real constraint
    every_au = [syn.render_faces(people, rng.uniform(0, 1, (N_PEOPLE, 12)).astype(np.float32),
                                 None, rng.uniform(0, 1, N_PEOPLE)) for _ in range(2)]
    disfa_like = [syn.render_faces(people, syn.random_au_frames(rng, N_PEOPLE)) for _ in range(2)]
    emotions = list(_emotion_faces(people, N_PEOPLE)[:, 1:].transpose(1, 0, 2, 3, 4))
    skin = people["skin"] * 2 - 1                                      # (n, 3) in image units
    plain = lambda im: (np.abs(im - skin[:, :, None, None]) < 1e-4).all(axis=1)   # (n, 32, 32)
    for faces in every_au + disfa_like + emotions:
        changed = (faces != neutral).any(axis=1)                       # (n, 32, 32)
        assert changed.any()
        assert not (changed & ~moving).any(), "an expression changed a pixel outside its regions"
        # background corners and the top of the head (hair) are bit-identical
        for r, c in [(0, 0), (0, 31), (1, 16)]:
            assert np.array_equal(faces[:, :, r, c], neutral[:, :, r, c])
    for faces in disfa_like + emotions:
        # plain-skin pixels (exactly the person's skin colour) mostly stay plain skin
        kept = (plain(neutral) & plain(faces)).sum(axis=(1, 2)) / plain(neutral).sum(axis=(1, 2))
        assert kept.min() > 0.35, kept


@pytest.mark.parametrize("au", AUS)
def test_each_au_changes_its_own_region_and_grows_with_intensity(people, au):
    zeros = np.zeros((N_PEOPLE, 12), np.float32)
    neutral = syn.render_faces(people, zeros)
    own = syn.moving_mask(people, [au])                                # (n, 32, 32)
    masses = []
    for intensity in (0.25, 0.5, 0.75, 1.0):
        aus = zeros.copy()
        aus[:, AUS.index(au)] = intensity
        change = np.abs(syn.render_faces(people, aus) - neutral).sum(axis=1)   # (n, 32, 32)
        inside = (change * own).sum(axis=(1, 2)) / change.sum(axis=(1, 2))
        assert inside.min() > 0.9, f"{au} changes pixels outside its region {syn.AU_REGIONS[au]}"
        masses.append(change.sum(axis=(1, 2)))
    masses = np.array(masses)                                          # (4 intensities, n)
    assert (np.diff(masses, axis=0) > 0).all(), f"{au}'s change does not grow with intensity"
    assert masses[-1].min() > 2.0, f"{au} at full intensity barely changes the face"


def test_au_regions_are_specific():
    """AU1 (brows) and AU26 (jaw) must not touch each other's regions at all."""
    people = syn.sample_identities(4, seed=3)
    zeros = np.zeros((4, 12), np.float32)
    neutral = syn.render_faces(people, zeros)
    for au, other in [("AU1", "AU26"), ("AU26", "AU1"), ("AU5", "AU12")]:
        aus = zeros.copy()
        aus[:, AUS.index(au)] = 1
        changed = (syn.render_faces(people, aus) != neutral).any(axis=1)
        only_other = syn.moving_mask(people, [other]) & ~syn.moving_mask(people, [au])
        assert changed.any() and not (changed & only_other).any()


def test_the_8_emotions_are_pairwise_distinct(people):
    faces = _emotion_faces(people, 6)                                   # (6, 8, 3, 32, 32)
    for i in range(len(EMOTIONS)):
        for j in range(i + 1, len(EMOTIONS)):
            changed_pixels = (np.abs(faces[:, i] - faces[:, j]).max(axis=1) > 0.1).sum(axis=(1, 2))
            assert changed_pixels.min() >= 5, (EMOTIONS[i], EMOTIONS[j], changed_pixels)
    recipes = syn.RECIPE_MATRIX
    assert len(np.unique(recipes, axis=0)) == len(EMOTIONS)
    assert np.array_equal(syn.emotion_aus("happy"), syn.EMOTION_RECIPES["happy"])
    assert syn.emotion_aus("happy")[AUS.index("AU12")] > 0.5           # happy smiles
    assert syn.emotion_aus("surprised")[AUS.index("AU26")] > 0.5       # surprise drops the jaw


def test_contempt_is_one_sided(people):
    zeros = np.zeros((N_PEOPLE, 12), np.float32)
    neutral = syn.render_faces(people, zeros)
    smirk = syn.render_faces(people, zeros, None, np.ones(N_PEOPLE))
    assert np.array_equal(smirk[..., :16], neutral[..., :16])         # image-left half untouched
    assert (smirk[..., 16:] != neutral[..., 16:]).any(axis=(1, 2, 3)).all()


def test_gaze_moves_only_the_eyes(people):
    zeros = np.zeros((N_PEOPLE, 12), np.float32)
    front, left, right = (syn.render_faces(people, zeros, np.full(N_PEOPLE, g)) for g in range(3))
    eyes = syn.region_mask(syn.expression_regions(people)["eyes"])
    for faces in (left, right):
        changed = (faces != front).any(axis=1)
        assert changed.any(axis=(1, 2)).all() and not (changed & ~eyes).any()
    assert not np.array_equal(left, right)


def test_emotion_mix_has_a_defined_target():
    mix = np.zeros(8, np.float32)
    mix[EMOTIONS.index("happy")] = mix[EMOTIONS.index("surprised")] = 0.5
    target = syn.render_target(3, mix, gaze=1, seed=0)
    aus = 0.5 * (syn.emotion_aus("happy") + syn.emotion_aus("surprised"))
    expected = syn.render_faces(syn.identity_params([3], 0), aus[None], [1])[0]
    assert np.array_equal(target, expected)
    happy = syn.render_target(3, np.eye(8)[EMOTIONS.index("happy")], gaze=1)
    assert not np.array_equal(target, happy)
    au_label = np.zeros(12, np.float32)
    au_label[AUS.index("AU12")] = 0.7
    direct = syn.render_faces(syn.identity_params([3], 0), au_label[None], [1])[0]
    assert np.array_equal(syn.render_target(3, au_label, gaze=1), direct)


def test_emotion_faceset_follows_the_rafd_protocol():
    fs = syn.emotion_faceset(n_subjects=4, seed=1)
    n = 4 * 8 * 3
    assert fs.kind == "emotion" and fs.label_names == EMOTIONS and fs.images.shape == (n, 3, 32, 32)
    assert np.array_equal(fs.labels.sum(axis=1), np.ones(n)) and set(fs.labels.ravel()) == {0.0, 1.0}
    assert len(fs) == 8 * n                                            # 8 pairs per image
    src, tgt = fs.pairs.T
    assert (fs.subjects[src] == fs.subjects[tgt]).all() and (fs.groups[src] == fs.groups[tgt]).all()
    assert np.array_equal(np.bincount(tgt, minlength=n), np.full(n, 8))
    assert np.array_equal(fs.groups, fs.meta["gaze"]) and set(fs.groups.tolist()) == {0, 1, 2}
    # each (subject, gaze) has its 8 emotions exactly once
    for s in range(4):
        for g in range(3):
            rows = (fs.subjects == s) & (fs.groups == g)
            assert np.array_equal(fs.labels[rows].sum(axis=0), np.ones(8))
    # the metadata re-renders every image exactly (ground truth for evaluation)
    again = syn.render_targets(fs.subjects, fs.labels, fs.meta["gaze"], seed=1)
    assert np.array_equal(again, fs.images)


def test_au_faceset_follows_the_disfa_protocol():
    fs = syn.au_faceset(n_subjects=5, frames_per_subject=40, seed=2)
    n = 5 * 40
    assert fs.kind == "au" and fs.label_names == AUS and fs.labels.shape == (n, 12)
    assert fs.labels.min() >= 0 and fs.labels.max() <= 1
    active = (fs.labels > 0).sum(axis=1)
    assert (active == 0).any() and (active >= 2).any() and active.mean() < 4   # sparse, combos
    assert len(fs) == n and np.array_equal(np.sort(fs.pairs[:, 1]), np.arange(n))  # each target once
    assert (fs.subjects[fs.pairs[:, 0]] == fs.subjects[fs.pairs[:, 1]]).all()
    again = syn.render_targets(fs.subjects, fs.labels, fs.meta["gaze"], seed=2)
    assert np.array_equal(again, fs.images)
    # subject 1's frames do not depend on how many subjects were made
    small = syn.au_faceset(n_subjects=2, frames_per_subject=40, seed=2)
    assert np.array_equal(small.labels[small.subjects == 1], fs.labels[fs.subjects == 1])


def test_subject_folds_share_no_subject_and_held_out_targets_are_exact():
    fs = syn.emotion_faceset(n_subjects=8, seed=0, gazes=(0,))
    seen = []
    for fold in range(4):
        train, test = split(fs, fold, k=4)
        assert not set(train.subject_ids) & set(test.subject_ids)
        assert len(train) == 8 * len(train.images) and len(test) == 8 * len(test.images)
        seen.extend(test.subject_ids.tolist())
        # any held-out person with any label can be rendered exactly
        rows = np.arange(len(test.images))
        target = syn.render_targets(test.subjects, test.labels, np.asarray(test.meta["gaze"]),
                                    seed=int(test.meta["identity_seed"][0]))
        assert np.array_equal(target, test.images[rows])
    assert sorted(seen) == list(range(8))


def test_bad_inputs_give_clear_errors(people):
    with pytest.raises(ValueError, match="au_intensities must be"):
        syn.render_faces(people, np.zeros((N_PEOPLE, 8), np.float32))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        syn.render_faces(people, np.full((N_PEOPLE, 12), 2.0, np.float32))
    with pytest.raises(ValueError, match="gaze codes"):
        syn.render_faces(people, np.zeros((N_PEOPLE, 12), np.float32), np.full(N_PEOPLE, 3))
    with pytest.raises(ValueError, match="unknown emotion"):
        syn.emotion_aus("joyful")
    with pytest.raises(ValueError, match="expected 8 emotion"):
        syn.render_target(0, np.zeros(5))


def test_contact_sheet_command_writes_a_png(tmp_path):
    iio = pytest.importorskip("imageio.v3")
    out = tmp_path / "sheet.png"
    syn.main(["--out", str(out), "--identities", "2", "--scale", "1"])
    sheet = iio.imread(out)
    assert sheet.ndim == 3 and sheet.shape[2] == 3
    assert sheet.shape[1] >= (10 + 6) * 32 and sheet.shape[0] >= 12 * 32   # both parts, side by side
