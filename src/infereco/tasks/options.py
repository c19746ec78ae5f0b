"""Which task options each task takes: declared where the task is registered, refused by name elsewhere.

The run description (`runconfig.RunConfig`) has one set of task fields for every task, but each
task uses some of them only: `--level` means something for generated arithmetic and nothing for
HumanEval, `--grader-model` only for answers graded by a model. An option the task cannot use would
be dropped silently, and the run would not be the experiment the user asked for; so, as with a
strategy's options (`strategies.options`), it is refused in one line naming the flag and the tasks
that do take it, before anything is built, priced or sent.

What a task takes is declared by registration:
- a task name (`tasks.registry.TaskFormat`) declares its own `options` (arithmetic: `GENERATED`),
  reads `--data PATH` when it `needs_data`, and names the format of its rows (`rows`);
- a row format (`tasks.formats.Format`) declares the options its grading uses (`SANDBOX`, `GRADER`);
- a file whose rows are detected (`rows="auto"`: `--task jsonl --data F`, `--task F.jsonl`) takes
  `--format`, and the options of the format named by `--format`, or else of the format its first row
  is detected as (checked again once the file is read, still before anything is sent).

Only options the user set are checked (a default says nothing), and never a stored run's description:
what a run was made with is resumed as it was, even if it carries an option a later version refuses.

This module names the options; what each task takes and the check are in `tasks.registry`
(`takes`, `inapplicable`), the refusal's wording in `RunConfig.check_task_options`.
"""

from __future__ import annotations

#: every task takes these: which problems (the first N) and how they are asked
EVERY_TASK = ("limit", "system_prompt", "prompt_template")
#: generated problems (arithmetic): their difficulty and the generator's seed
GENERATED = ("level", "task_seed")
#: read from `--data PATH` (a task name whose entry `needs_data`)
DATA = ("data",)
#: a file whose rows' format is detected, or named with `--format`
FILE_FORMAT = ("task_format",)
#: code run in the sandbox
SANDBOX = ("sandbox_packages",)
#: answers graded by a model (the "grader" role)
GRADER = ("grader_model", "grader_base_url", "grader_prompt")
#: every task option of the run description (besides `task` itself), in the order flags are listed
TASK_OPTIONS = ("level", "limit", "data", "task_seed", "task_format", "system_prompt", "prompt_template",
                "sandbox_packages", "grader_model", "grader_base_url", "grader_prompt")  # fmt: skip

#: what a task's loader reads to make its problems (a `Task` built in Python has its problems already)
LOADERS = ("limit",) + GENERATED + DATA + FILE_FORMAT

#: `TaskFormat.rows` of a file whose rows' format is detected from its first row (or `--format`)
DETECTED = "auto"

__all__ = ["DATA", "DETECTED", "EVERY_TASK", "FILE_FORMAT", "GENERATED", "GRADER", "LOADERS", "SANDBOX", "TASK_OPTIONS"]
