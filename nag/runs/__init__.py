"""Run directories and the trust boundary: the only code that reads or writes a run dir, and every rule for files
read from disk.

Trusted: the installed code (nag, torch and their dependencies) and the command line the user types. Untrusted:
every file and folder nag reads — checkpoints, run and sweep dirs (configs, overrides, metrics, failure records,
logs), caches, dataset folders. Nothing read from them may name code to run (:mod:`~nag.runs.trusted`,
:mod:`~nag.runs.overrides`), be resolved as an interpolation (:mod:`~nag.runs.stored_config`), make nag write
outside its output dir through a link (:mod:`~nag.io.output`, :meth:`~nag.runs.run_dir.RunDir.check_resumable`),
hang it or exhaust its memory (bounded readers, :mod:`~nag.runs.checkpoint_file`), or change results silently.

- :mod:`nag.io.files`: bounded, link-proof reading; :mod:`nag.io.output`: atomic, link-proof writing into
  output folders.
- :mod:`nag.runs.run_dir`: a run dir's layout, its reading and writing; :mod:`nag.runs.discovery`: the runs under
  a folder and what varies between them.
- :mod:`nag.runs.overrides`, :mod:`nag.runs.stored_config`: what may come back from a run's stored config.
- :mod:`nag.runs.checkpoint_file`, :mod:`nag.runs.trusted`: reading a checkpoint; the allow-list of classes.
- :mod:`nag.runs.resume`, :mod:`nag.runs.sweep`: continuing a run in place; jobs that fail cleanly.
"""
