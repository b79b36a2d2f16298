"""Reported results and generated leaderboards (data, installed as `fsar_leaderboards`)."""
