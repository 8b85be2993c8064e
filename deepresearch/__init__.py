"""deepresearch-gym: Gymnasium environments and a masked GRPO trainer for LLMs that reason with search.

Importing this package registers the environment ids (``DeepResearch-Wiki-v0``,
``DeepResearch-Web-v0``) with Gymnasium, now if Gymnasium is loaded, else as soon as
it is; ``gym.register_envs(deepresearch)`` is the Gymnasium 1.x way to say so
explicitly. Nothing heavy is imported: ``deepresearch.rewards`` stays pure Python.
"""

from deepresearch.registration import WEB_ENV_ID, WIKI_ENV_ID, register_envs, register_now_or_on_gymnasium_import

__version__ = "0.1.0"

register_now_or_on_gymnasium_import()

__all__ = ["WEB_ENV_ID", "WIKI_ENV_ID", "__version__", "register_envs"]
