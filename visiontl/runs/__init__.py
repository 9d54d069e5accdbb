"""Run directories, summaries, reports and plots."""
