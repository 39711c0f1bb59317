"""The two kinds of target label the paper uses, and parsing of label specs typed by users.

- emotions: RaFD's 8 classes, as one-hot vectors of length 8 (a mix like happy=0.5,surprised=0.5
  gives an interpolated label);
- action units: the 12 DISFA AUs, each an intensity in [0, 1] (DISFA's 0-5 divided by 5).
"""
import numpy as np

# RaFD's file-name spellings, in a fixed order (the order of the one-hot vector).
EMOTIONS = ("neutral", "happy", "sad", "angry", "disgusted", "contemptuous", "fearful", "surprised")

# The 12 DISFA action units (FACS numbers) in label order.
AUS = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU9", "AU12", "AU15", "AU17", "AU20", "AU25", "AU26")
# RaFD's three gazes (its file names' spelling), as the pairing-group codes 0, 1, 2.
GAZES = ("frontal", "left", "right")

AU_DESCRIPTIONS = {
    "AU1": "inner brow raiser", "AU2": "outer brow raiser", "AU4": "brow lowerer",
    "AU5": "upper lid raiser", "AU6": "cheek raiser", "AU9": "nose wrinkler",
    "AU12": "lip corner puller", "AU15": "lip corner depressor", "AU17": "chin raiser",
    "AU20": "lip stretcher", "AU25": "lips part", "AU26": "jaw drop",
}


def one_hot(index, n=len(EMOTIONS)):
    """(n,) float32 with a 1 at `index`."""
    v = np.zeros(n, np.float32)
    v[index] = 1.0
    return v


def parse_label(spec, names):
    """A user's label string -> (len(names),) float32.

    'happy'                     -> one-hot
    'happy=0.5,surprised=0.5'   -> weighted mix (weights as given, not renormalised)
    'AU12=0.8,AU6=0.5'          -> AU intensities, the rest 0
    Names are matched case-insensitively; an unknown name lists the valid ones.
    """
    lookup = {n.lower(): i for i, n in enumerate(names)}
    label = np.zeros(len(names), np.float32)
    parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    if not parts:
        raise ValueError(f"empty label; give one of: {', '.join(names)}")
    seen = set()
    for part in parts:
        name, _, value = part.partition("=")
        key = name.strip().lower()
        if key not in lookup:
            raise ValueError(f"unknown label name {name.strip()!r}; valid names are: {', '.join(names)}")
        if key in seen:   # happy=0.5,happy=0.5: add them? keep the last? Ambiguous: refuse
            raise ValueError(f"label {name.strip()!r} is given twice in {spec!r}; name each label once")
        seen.add(key)
        try:
            weight = float(value) if value else 1.0
        except ValueError:
            raise ValueError(f"label weight {value!r} for {name.strip()!r} is not a number "
                             f"(write e.g. {name.strip()}=0.5)") from None
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"label weight for {name.strip()!r} must be in [0, 1], got {weight}")
        label[lookup[key]] = weight
    return label
