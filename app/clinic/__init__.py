"""The open-patient context, features, scoring and the alert policy."""
