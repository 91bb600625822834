"""Meta-World v3 with care's conventions (OWNER: collection helper).

TASK_SUITES = {"MT10": [...10 env names...], "MT50": [...]} ; resolve_tasks("MT10" | "a-v3,b-v3") -> list[str]
INSTRUCTIONS: dict[env_name, list[str]]  several natural-language paraphrases per task.

class MetaWorldEnv:
    __init__(env_name, size=128, camera="corner", seed=0, max_steps=200)   # fast render settings
    reset() -> image uint8 (H, W, 3), upright                             # task variation from seed
    step(action float (4,)) -> (image, success: bool, done: bool)
    state -> float32 obs vector (39,)
    expert_action() -> float32 (4,)                                        # scripted policy
    track_points(points_per_body) / project_points() -> (N, 2) pixels, (N,) visible
    close()
"""
