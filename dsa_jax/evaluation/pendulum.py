"""The pendulum's exact pixel judge applied to a codec: swaps, the swap grid, continuations, generations.

Test videos [M, T, H, W, 3] are split in halves: static sources (identity: the bob's colour)
and dynamic sources (action: the swing speed). Generations are scored from both priors, with
each test video's inferred static code and dynamics from the prior (what p(s) costs), and with
both codes drawn from a mixture fitted to training videos' codes (an ex-post density: where the
decoder was trained, whatever the priors).
"""

import jax
import numpy as np

from dsa_jax import code_density, sampling
from dsa_jax.codecs import Codec, Codes
from dsa_jax.evaluation import pendulum_metrics

DENSITY_COMPONENTS = 14  # one per bob colour and swing speed
MIXTURE_SIZES = (7, 14, 28, 56)  # components of the ex-post densities compared by full_intensity_by_code_source


def run(codec: Codec, videos, key: jax.Array, num_frames: int, density_videos) -> dict[str, float]:
  """Swap statistics at the videos' length; grid, continuation and generation scores at num_frames."""
  videos = np.asarray(videos, np.float32)
  half = videos.shape[0] // 2
  if half < 1:
    raise ValueError(f"The pendulum evaluation needs at least 2 test videos; got {videos.shape[0]}.")
  static_source, dynamic_source = videos[:half], videos[half : 2 * half]
  swap_key, grid_key, continue_key, generate_key = jax.random.split(key, 4)
  reconstruct_key, inferred_identity_key = jax.random.fold_in(key, 4), jax.random.fold_in(key, 5)
  swapped = np.asarray(sampling.swap(codec, static_source, dynamic_source, swap_key))
  grid = np.asarray(sampling.swap_grid(codec, static_source, dynamic_source, grid_key, num_frames))
  colours, speeds = pendulum_metrics.bob_colour(videos), pendulum_metrics.swing_speed(videos)
  continued = np.asarray(sampling.continue_video(codec, videos, continue_key, num_frames))
  generated = np.asarray(sampling.generate(codec, generate_key, videos.shape[0], num_frames))
  reconstructed = np.asarray(sampling.reconstruct(codec, videos, reconstruct_key))
  inferred_identities = codec.encode(videos).static  # [M, S] posterior means
  generated_with_inferred_identities = np.asarray(
      sampling.generate_with_static(codec, inferred_identities, inferred_identity_key, num_frames)
  )
  if len(density_videos) < DENSITY_COMPONENTS:
    raise ValueError(
        f"The pendulum's ex-post density has {DENSITY_COMPONENTS} components but config.sample.num_density_videos "
        f"gave {len(density_videos)} training videos; raise it to at least {DENSITY_COMPONENTS}."
    )
  density_key, density_sample_key = jax.random.split(jax.random.fold_in(key, 6))
  density = code_density.fit_codes(codec.encode(density_videos), density_key, DENSITY_COMPONENTS)
  generated_from_density = np.asarray(
      sampling.generate_from_density(codec, density, density_sample_key, videos.shape[0], num_frames)
  )
  return {
      **pendulum_metrics.swap_statistics(swapped, static_source, dynamic_source),
      **pendulum_metrics.transfer_grid_statistics(
          grid, colours[:half], speeds[:half], colours[half : 2 * half], speeds[half : 2 * half]
      ),
      "generations": videos.shape[0],
      "generation_frames": num_frames,
      "generations_swinging_in_last_third": float(pendulum_metrics.still_swinging(generated).mean()),
      "generations_at_full_intensity": pendulum_metrics.fraction_at_full_intensity(generated),
      "generations_with_inferred_identities_at_full_intensity": pendulum_metrics.fraction_at_full_intensity(
          generated_with_inferred_identities
      ),
      "generations_from_fitted_density_at_full_intensity": pendulum_metrics.fraction_at_full_intensity(
          generated_from_density
      ),
      "generations_from_fitted_density_swinging_in_last_third": float(pendulum_metrics.still_swinging(generated_from_density).mean()),
      "reconstructions_at_full_intensity": pendulum_metrics.fraction_at_full_intensity(reconstructed),
      "continuations_swinging_in_last_third": float(pendulum_metrics.still_swinging(continued).mean()),
      "continuations_keeping_speed": float(np.mean(pendulum_metrics.swing_speed(continued) == speeds)),
  }


def full_intensity_by_code_source(
    codec: Codec, training_videos, key: jax.Array, num_videos: int, num_frames: int, mixture_sizes=MIXTURE_SIZES
) -> dict[str, float]:
  """The fraction of num_videos decodings to num_frames at full intensity, by where the static and dynamic codes come from.

  "posterior" codes are posterior means of training videos drawn with replacement, "prior"
  codes come from the codec's priors, "diagonal Gaussian" is fitted to the posterior static
  codes and "mixture of K" to both codes jointly (`code_density`): where generation loses it.
  """
  codes = codec.encode(training_videos)  # posterior means
  choice_key, static_key, dynamics_key, gaussian_key, mixture_key, decode_key = jax.random.split(key, 6)
  chosen = jax.random.randint(choice_key, (num_videos,), 0, codes.static.shape[0])  # [N]
  posterior_static, posterior_dynamics = codes.static[chosen], codes.dynamics[chosen]
  prior_static = codec.sample_static(static_key, num_videos)
  prior_dynamics = codec.sample_dynamics(dynamics_key, num_videos, num_frames)
  static_noise = jax.random.normal(gaussian_key, prior_static.shape, prior_static.dtype)  # [N, S]
  gaussian_static = codes.static.mean(axis=0) + codes.static.std(axis=0) * static_noise
  sources = {
      "posterior static, posterior dynamics": Codes(posterior_static, posterior_dynamics),
      "posterior static, prior dynamics": Codes(posterior_static, prior_dynamics),
      "prior static, posterior dynamics": Codes(prior_static, posterior_dynamics),
      "prior static, prior dynamics": Codes(prior_static, prior_dynamics),
      "diagonal Gaussian static, prior dynamics": Codes(gaussian_static, prior_dynamics),
  }
  for index, size in enumerate(mixture_sizes):
    fit_key, sample_key = jax.random.split(jax.random.fold_in(mixture_key, index))
    density = code_density.fit_codes(codes, fit_key, size)
    sources[f"mixture of {size}, both codes"] = code_density.sample_codes(density, sample_key, num_videos)
  return {
      name: pendulum_metrics.fraction_at_full_intensity(np.asarray(codec.decode(source, decode_key, num_frames)))
      for name, source in sources.items()
  }
