"""Reports for people: the evaluation report as one self-contained HTML file."""
