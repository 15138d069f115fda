"""Operations reports: gather run history, repositories and drills; compute; render.

``history`` reads the Prefect API and the repositories into plain records, ``compute`` turns
records into a report (pure, so synthetic history tests it), ``charts`` draws the figures with
matplotlib, ``render`` writes the Markdown artifact and the self-contained HTML file.
"""
