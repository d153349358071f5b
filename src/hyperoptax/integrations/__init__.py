"""Optional integrations: Flax/Optax population training, Orbax, TFDS, Ray."""
