"""The project's user-facing errors: each names the file (and line or field) that is wrong."""


class ExsearchError(ValueError):
  """Base class: bad input a user can fix."""


class CheckpointError(ExsearchError):
  """A model checkpoint (HF directory, safetensors, GGUF) is missing, malformed or unsupported."""


class ConfigError(ExsearchError):
  """A config value or a mesh shape is invalid."""
