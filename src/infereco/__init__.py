"""infereco: the economics of LLM inference.

    import infereco as ie
    result = ie.run("arithmetic", level=3, strategy="majority", n=16, limit=30, store="runs.db")
    result.summary["coverage"], result.to_pandas()
"""

from infereco.api import Experiment, RunResult, resume, run
from infereco.runconfig import RunConfig
from infereco.errors import BackendError, UserError
from infereco.problem import Problem

__all__ = ["run", "resume", "Experiment", "RunConfig", "RunResult", "Problem", "UserError", "BackendError"]
__version__ = "0.1.0"
