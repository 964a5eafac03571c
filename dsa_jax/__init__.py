"""dsa_jax: disentangled sequential autoencoders for video (DSA, VDSM) in JAX and Flax.

A notebook needs only these names: `restore` a run, then `sampling` over its `codec`.
"""

from dsa_jax import evaluation, sample_files, sampling, visualize
from dsa_jax.codecs import Codec, Codes
from dsa_jax.runs import Run, load_videos, restore
from dsa_jax.train import train_and_evaluate

__all__ = [
    "Codec", "Codes", "Run", "evaluation", "load_videos", "restore", "sample_files", "sampling", "train_and_evaluate",
    "visualize",
]
