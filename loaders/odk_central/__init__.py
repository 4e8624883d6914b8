"""ODK Central."""
