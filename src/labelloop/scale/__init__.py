"""Running labelloop beyond one process: predict on Ray (ray_predict)."""
