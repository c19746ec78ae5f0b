"""infereco: the economics of LLM inference.

    import infereco as ie
    result = ie.run("arithmetic", level=3, strategy="majority", n=16, limit=30, store="runs.db")
    result.summary["coverage"], result.to_pandas()
    ie.recommend("runs.db", 0.8)[0].choice   # the cheapest setting reaching 80% accuracy
"""

from infereco.api import Experiment, RunResult, load_results, recommend, resume, run
from infereco.runconfig import RunConfig
from infereco.errors import BackendError, UserError
from infereco.problem import Problem

__all__ = ["run", "resume", "recommend", "load_results", "Experiment", "RunConfig", "RunResult", "Problem",
           "UserError", "BackendError"]
__version__ = "0.1.0"
