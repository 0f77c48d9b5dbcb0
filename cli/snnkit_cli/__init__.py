"""snnkit's command line: parse -> call snnkit_core -> render with rich. No training logic lives here."""
