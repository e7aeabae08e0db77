"""multimodal_sched: PID-guided two-stage multimodal training (Algorithm 1)."""
