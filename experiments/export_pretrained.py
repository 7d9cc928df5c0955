r"""Ships a trained run as a model of the package (``experiments/pretrained.py``).

  python -m experiments.export_pretrained --workdir=workdirs/default \
      --name=default --command="python -m experiments.main \
      --config=experiments/configs/default.py --workdir=workdirs/default"

Writes ``experiments/pretrained_models/<name>/`` and prints its path.
"""

from absl import app
from absl import flags

from experiments import cli
from experiments import pretrained

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained and evaluated run.")
_NAME = flags.DEFINE_string("name", "default", "Name of the shipped model.")
_COMMAND = flags.DEFINE_string("command", "", "The command that trained it.")
_NUM = flags.DEFINE_integer("num_examples", 8, "Example test crops to ship.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _WORKDIR.value:
    raise app.UsageError("--workdir (a trained and evaluated run) is required.")
  print(pretrained.export(_WORKDIR.value, _NAME.value, _COMMAND.value, _NUM.value))


if __name__ == "__main__":
  app.run(cli.one_line_errors(main), flags_parser=cli.parse_flags)
