"""dsa_jax: disentangled sequential autoencoders for video (DSA, VDSM) in JAX and Flax."""
