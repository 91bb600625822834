"""The policy stage: a fine-tuned network with what it takes to run it on a robot.

    controller.py   CarePolicy: observation -> action (preprocessing, normalisers, chunk queue)
    normalize.py    per-dimension q01/q99 bounds <-> [-1, 1]
    chunking.py     open-loop chunks or temporal ensembling
    folder.py       the policy folder format (save_policy / load_policy_model)

The network itself (CareVLA) and the LoRA helpers live with the models (care.models.vla).
"""

from care.policy.controller import CarePolicy, preprocess_images
from care.policy.folder import load_policy_model, read_policy_meta, save_policy

__all__ = ["CarePolicy", "preprocess_images", "load_policy_model", "read_policy_meta", "save_policy"]
