"""The one error type of dataset export: a message naming the thing at fault."""


class ExportError(ValueError):
  """Bad input to ``generate`` (run directory, files, flags, output dir).

  The message is one line that names the file, flag or value at fault; the
  command line prints it as ``error: <message>`` without a traceback.
  """
