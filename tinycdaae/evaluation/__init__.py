"""Numbers instead of a user study: how well a network draws *unseen* people with a new expression.

The paper judged its variants by figures and an online survey. Here every (source image, target
label) pair of the held-out people is scored three ways, for each network and for the baseline
that copies its input (x̂ = x_s):

  target fidelity   x̂ against the person's real image with the target label x_t:
                    MSE, PSNR and SSIM (images in [-1, 1], so the data range is L = 2)
  identity          top-1 retrieval: among held-out real images that all carry the target label
                    (one per held-out person), is the one nearest to x̂ (pixels inside the face)
                    the same person?
  expression        a small CNN trained on real training-fold images only (never on generated
                    ones) reads x̂: its accuracy against the target label (emotions) or its mean
                    absolute error of AU intensities (action units). Its score on real held-out
                    images is the reference ("ceiling"; generated faces cleaner than the real
                    ones can beat it).

On real photographs (every dataset but the synthetic one) identity is also judged by dlib's
face-recognition network when dlib is installed (evaluation/face_identity.py): the same retrieval, with
128-d descriptors instead of pixels ("identity (dlib)"). It is a feature learnt on other people's
faces, which separates people across expressions where pixels falter (measured on the London
photos: docs/evaluation.md). The synthetic faces are not photographs, so there it is not used.

Why these together (docs/stability.md shows both failures): expression accuracy alone flatters a network that draws a
generic face with the right expression (the no-connection control), and identity alone flatters
the copy baseline, which keeps the person perfectly and never changes the expression.

The identity feature space is raw pixels inside the face ellipse (FACE_ELLIPSE), on purpose.
Every candidate in a retrieval shares the target label, so the expression is (as far as the data
allows) the same for all of them and what separates them is the person: face shape, skin, eyes,
brows. A feature learnt from the training people would have to generalise to unseen ones, and
the expression classifier's features are trained to *ignore* identity. Pixels are crude but
assume nothing and cannot be gamed by a network that learnt the same features. The backdrop is
left out because it identifies a synthetic person by itself (whole-image retrieval is reported
too, to show how much).

Pairs whose target label equals the source's label are left out: they ask for no change (the
copy baseline is exact there and its PSNR infinite), and the task measured is changing one.

The modules, in the order a score is made:

    metrics.py        MSE, PSNR, SSIM; the face ellipse and identity retrieval
    reader.py         the expression reader (a small CNN from the project's layers)
    face_identity.py  dlib's 128-d face descriptors, for photographs
    evalset.py        the held-out pairs, their targets and galleries
    scoring.py        one network's images -> every metric; runs averaged (mean ± std)
    report.py         results.md, results.json, the confusion pictures
    job.py            evaluate_splits: all of the above for every network of every split

Pure NumPy and the project's layers; pictures are written through grids.save_png, which imports
imageio only when called. The names below are re-exported, so `from tinycdaae import evaluation`
then `evaluation.ssim(...)` works.
"""
from . import job
from .evalset import EvaluationSet, evaluation_set
from .job import BASELINE, NETWORK_ORDER, Split, comparison_sheet, evaluate_splits
from .metrics import DATA_RANGE, FACE_ELLIPSE, face_mask, identity_hits, mse, nearest_in_gallery, psnr, ssim
from .reader import READER_FACES_SEEN, ClassifierConfig, ExpressionReader, confusion_matrix, per_class_accuracy
from .report import confusion_image, markdown_report, write_report
from .scoring import aggregate, change_bins, expression_scores, mean_std, reader_ceiling, score

__all__ = ["job", "EvaluationSet", "evaluation_set", "BASELINE", "NETWORK_ORDER", "Split", "comparison_sheet",
           "evaluate_splits", "DATA_RANGE", "FACE_ELLIPSE", "face_mask", "identity_hits", "mse",
           "nearest_in_gallery", "psnr", "ssim", "READER_FACES_SEEN", "ClassifierConfig", "ExpressionReader",
           "confusion_matrix", "per_class_accuracy", "confusion_image", "markdown_report", "write_report",
           "aggregate", "change_bins", "expression_scores", "mean_std", "reader_ceiling", "score"]
