"""modeldepot: keeps generative models available."""
