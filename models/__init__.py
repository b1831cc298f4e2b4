"""Models: the signal contract, readers, causal preprocessing, the synthetic cohort."""
