"""Scoring predictions: lesion-wise metrics as challenges define them, and statistics over cases."""
