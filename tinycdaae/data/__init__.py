"""The data pipeline: faces in, FaceSets of (source, target) pairs out. Imports nothing from the
network, the objective or training (tests/test_layout.py checks it).

    labels.py     the 8 emotions, the 12 action units, label specs such as "happy=0.5"
    pairs.py      FaceSet, the pairing rules and the subject-independent folds
    synthetic.py  the built-in rendered faces (no download)
    align.py      reading photos, dlib's landmarks, the similarity transform to 32x32
    prepare.py    aligning a dataset in parallel, once, into a cache
    rafd.py       RaFD; disfa.py: DISFA; folder.py: your own labelled folder and the London photos
    datasets.py   load_dataset(name, ...) and the training/held-out split
"""
