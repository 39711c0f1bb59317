"""Pictures of what the network does: faces tiled into PNG grids, in the style of the paper's figures.

    expression_grid(model, faces, labels)   Fig. 2/5: one row per input face, first column the
                                            input, then one column per target label
    manifold_labels(n_labels, a, b, steps)  Fig. 3: a 2-D sweep of two labels' intensities
    interpolation_labels(start, end, steps) a strip from one label to another
    tile(cells, scale)                      (rows, cols, 3, H, W) in [-1, 1] -> one uint8 RGB image
    save_png(path, image)

The model is used only through ``model.generate(images, labels)``. imageio is imported inside
save_png: importing this module never needs an image library (and never needs matplotlib).
"""
import os

import numpy as np

GAP = 2          # white pixels between and around the cells of a grid (after enlarging)


def to_uint8(images):
    """(..., 3, H, W) float in [-1, 1] -> (..., H, W, 3) uint8: round((x + 1) * 127.5)."""
    pixels = np.round((np.asarray(images, np.float64) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    return np.moveaxis(pixels, -3, -1)                                      # (..., H, W, 3)


def tile(cells, scale=4, gap=GAP):
    """(rows, cols, 3, H, W) in [-1, 1] -> (rows*(H*scale+gap)+gap, cols*(W*scale+gap)+gap, 3) uint8.

    Each cell is enlarged `scale` times by nearest neighbour (every pixel becomes a scale×scale
    block: nothing is smoothed, so what you see is exactly what the network produced)."""
    cells = np.asarray(cells)
    rows, cols, _, height, width = cells.shape
    pixels = to_uint8(cells).repeat(scale, axis=2).repeat(scale, axis=3)   # (rows, cols, H*s, W*s, 3)
    h, w = height * scale, width * scale
    sheet = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap, 3), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            top, left = gap + r * (h + gap), gap + c * (w + gap)
            sheet[top:top + h, left:left + w] = pixels[r, c]
    return sheet


def save_png(path, image):
    """Write an (H, W, 3) uint8 image as PNG, making the folder if needed."""
    import imageio.v3 as iio
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    iio.imwrite(path, np.ascontiguousarray(image), extension=".png")


def generate(model, faces, labels):
    """Every face with every label: faces (R, 3, H, W), labels (C, L) -> (R, C, 3, H, W) x̂."""
    faces, labels = np.asarray(faces, np.float32), np.asarray(labels, np.float32)
    rows, cols = len(faces), len(labels)
    face_index = np.repeat(np.arange(rows), cols)          # (R*C,) row-major: face r, label c
    label_index = np.tile(np.arange(cols), rows)           # (R*C,)
    x_hat = model.generate(faces[face_index], labels[label_index])["x_hat"]   # (R*C, 3, H, W), chunked inside
    return x_hat.reshape(rows, cols, *x_hat.shape[1:])     # (R, C, 3, H, W)


def expression_grid(model, faces, labels):
    """Fig. 2/5: (R, 1 + C, 3, H, W) with the input face first, then one column per label."""
    generated = generate(model, faces, labels)             # (R, C, 3, H, W)
    return np.concatenate([np.asarray(faces, np.float32)[:, None], generated], axis=1)


def each_label(n_labels):
    """One column per label at full strength: each emotion one-hot, or each AU at intensity 1."""
    return np.eye(n_labels, dtype=np.float32)              # (L, L)


def manifold_labels(n_labels, a, b, steps=5):
    """Fig. 3: label a's intensity down the rows, label b's across the columns, both 0 -> 1.
    a, b: label indices. Returns (steps, steps, L); cell (i, j) has a = i/(steps-1), b = j/(steps-1)."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    labels = np.zeros((steps, steps, n_labels), np.float32)
    labels[:, :, a] = t[:, None]
    labels[:, :, b] = t[None, :]
    return labels


def interpolation_labels(start, end, steps=8):
    """A strip: (steps, L) labels (1 - t)·start + t·end for t = 0 .. 1."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]    # (steps, 1)
    return (1.0 - t) * np.asarray(start, np.float32) + t * np.asarray(end, np.float32)


MISSING = 0.0    # a cell with no real image: mid-grey in [-1, 1], unlike the white of a blank cell


def real_targets(faceset, rows, labels):
    """The real images the generated cells should look like, where the data has them: for each
    face in `rows`, the image of the same person and pairing group whose label equals each of
    `labels` (C, L). Returns (R, C, 3, H, W); a person without an image of some label gets a
    mid-grey cell there (MISSING), so one incomplete person does not cost every row its real
    images. None for AU sets (a frame whose intensities equal "one AU at 1, the rest 0" is a
    coincidence, not a target) and when no cell has a real image at all."""
    if faceset.kind != "emotion":
        return None
    out, found_any = [], False
    for row in rows:
        same = np.flatnonzero((faceset.subjects == faceset.subjects[row])
                              & (faceset.groups == faceset.groups[row]))           # this person, this group
        found = []
        for label in labels:
            match = same[np.all(faceset.labels[same] == label, axis=1)]
            found_any |= len(match) > 0
            found.append(faceset.images[match[0]] if len(match) else
                         np.full(faceset.images.shape[1:], MISSING, np.float32))
        out.append(found)
    return np.asarray(out, np.float32) if found_any else None


def with_real_rows(grid, targets):
    """Interleave an expression grid (R, 1 + C, ...) with the real targets (R, C, ...): each
    generated row is followed by the real images, under a blank (white) input cell."""
    blank = np.ones_like(grid[:, :1])                                       # (R, 1, 3, H, W) white
    real = np.concatenate([blank, targets], axis=1)                         # (R, 1 + C, 3, H, W)
    return np.stack([grid, real], axis=1).reshape(-1, *grid.shape[1:])      # (2R, 1 + C, 3, H, W)


def sample_faces(faceset, n_people=6):
    """Indices of one near-neutral image for each of n_people people of a FaceSet.

    People come in subject order, those with an image of every label first (within one
    pairing group), so that the real-target rows of the grid are complete where the data allows
    (a folder where some people lack an emotion); sets where everyone has every label, or no one
    does (AU frames), keep the first n_people. "Near-neutral": for emotion sets the image labelled
    neutral if there is one (else the first), for AU sets the frame with the smallest total AU
    intensity; ties go to the lowest pairing group (RaFD: frontal gaze), then the first image.
    The choice depends on the data only, so every epoch's grid shows the same people."""
    names = [n.lower() for n in faceset.label_names]
    if faceset.kind == "emotion":
        expressive = (1.0 - faceset.labels[:, names.index("neutral")] if "neutral" in names
                      else np.zeros(len(faceset.labels)))
    else:
        expressive = faceset.labels.sum(1)
    wanted = each_label(len(names))
    candidates = []
    for person in faceset.subject_ids:
        rows = np.flatnonzero(faceset.subjects == person)
        order = np.lexsort((rows, faceset.groups[rows], expressive[rows]))   # last key sorts first
        mine = rows[order]
        complete = next((r for r in mine if faceset.kind == "emotion" and _has_every_label(faceset, r, wanted)),
                        None)                                  # the first complete (person, group)
        candidates.append((complete is None, mine[0] if complete is None else complete))
    ordered = sorted(range(len(candidates)), key=lambda i: (candidates[i][0], i))   # stable: subject order
    return np.array([candidates[i][1] for i in ordered[:n_people]], np.int64)


def _has_every_label(faceset, row, labels):
    """Does the person of `row` have, in the pairing group of `row`, an image with each label?"""
    same = (faceset.subjects == faceset.subjects[row]) & (faceset.groups == faceset.groups[row])
    mine = faceset.labels[same]                                               # (n, L)
    return all(np.all(mine == label, axis=1).any() for label in labels)
