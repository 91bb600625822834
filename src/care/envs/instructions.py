"""Natural-language instructions for Meta-World tasks: several paraphrases per task.

The meaning of each task follows the Meta-World paper's task list (Yu et al., 2019, App. A).
An episode's instruction is one paraphrase chosen by its seed (`instruction_for`), so the
language model sees varied wording for one behaviour. A task without hand-written
sentences (a future Meta-World task) gets sentences derived from its name.
"""

from __future__ import annotations

import numpy as np

INSTRUCTIONS: dict[str, list[str]] = {
    "assembly-v3": [
        "Pick up the nut and place it onto the peg.",
        "Grab the ring-shaped nut and slide it down over the peg.",
        "Assemble the nut onto the peg.",
        "Lift the nut by its handle and put it on the peg.",
        "Fit the nut over the peg.",
    ],
    "basketball-v3": [
        "Dunk the basketball into the basket.",
        "Pick up the ball and put it through the hoop.",
        "Grab the basketball and score it in the basket.",
        "Lift the ball and drop it into the hoop.",
        "Put the basketball in the basket.",
    ],
    "bin-picking-v3": [
        "Pick the puck out of one bin and place it in the other bin.",
        "Move the puck from the left bin to the right bin.",
        "Grab the puck from its bin and drop it into the other bin.",
        "Transfer the puck between the two bins.",
        "Take the puck out of the bin and put it into the empty bin.",
    ],
    "box-close-v3": [
        "Pick up the lid and close the box with it.",
        "Grab the box cover and put it on the box.",
        "Close the box by placing its lid on top.",
        "Lift the lid and set it onto the box.",
        "Put the cover on the box.",
    ],
    "button-press-topdown-v3": [
        "Press the button from the top.",
        "Push the button down from above.",
        "Press down on the button.",
        "Reach over the button and push it down.",
        "Push the top button all the way down.",
    ],
    "button-press-topdown-wall-v3": [
        "Reach past the wall and press the button from the top.",
        "Push the button down from above, avoiding the wall.",
        "Go around the wall and press down on the button.",
        "Press the button from the top without hitting the wall.",
        "Avoid the wall and push the button down.",
    ],
    "button-press-v3": [
        "Press the button.",
        "Push the button in from the front.",
        "Press the button on the front of the box.",
        "Reach forward and push the button.",
        "Push the button all the way in.",
    ],
    "button-press-wall-v3": [
        "Reach past the wall and press the button.",
        "Go around the wall and push the button in.",
        "Press the button behind the wall.",
        "Avoid the wall and push the button from the front.",
        "Push the button without bumping into the wall.",
    ],
    "coffee-button-v3": [
        "Press the button on the coffee machine.",
        "Push the coffee machine's button.",
        "Turn on the coffee machine by pressing its button.",
        "Reach the coffee machine and push its button.",
        "Press the coffee maker's start button.",
    ],
    "coffee-pull-v3": [
        "Pull the mug out from under the coffee machine.",
        "Take the cup away from the coffee machine.",
        "Grab the mug and pull it out of the coffee machine.",
        "Slide the coffee mug back toward you.",
        "Remove the mug from the coffee machine.",
    ],
    "coffee-push-v3": [
        "Push the mug under the coffee machine.",
        "Slide the cup into the coffee machine.",
        "Move the mug beneath the coffee machine's spout.",
        "Put the coffee mug under the machine.",
        "Push the cup forward into the coffee machine.",
    ],
    "dial-turn-v3": [
        "Turn the dial.",
        "Rotate the dial halfway around.",
        "Spin the knob on the dial.",
        "Twist the dial to the other side.",
        "Turn the dial knob around.",
    ],
    "disassemble-v3": [
        "Pick the nut up off the peg.",
        "Remove the nut from the peg.",
        "Lift the nut off the peg.",
        "Take the ring-shaped nut off the peg.",
        "Disassemble the nut from the peg.",
    ],
    "door-close-v3": [
        "Close the door.",
        "Push the door shut.",
        "Swing the door closed.",
        "Shut the open door.",
        "Push the door until it is closed.",
    ],
    "door-lock-v3": [
        "Lock the door.",
        "Turn the lock on the door.",
        "Rotate the door's lock knob down to lock it.",
        "Push the lock down to lock the door.",
        "Lock the door by turning its latch.",
    ],
    "door-open-v3": [
        "Open the door.",
        "Pull the door open.",
        "Grab the door handle and swing the door open.",
        "Open the door by its handle.",
        "Swing the door wide open.",
    ],
    "door-unlock-v3": [
        "Unlock the door.",
        "Turn the lock to unlock the door.",
        "Rotate the door's lock knob up to unlock it.",
        "Push the lock up to unlock the door.",
        "Unlock the door by turning its latch.",
    ],
    "drawer-close-v3": [
        "Close the drawer.",
        "Push the drawer shut.",
        "Slide the drawer closed.",
        "Push the open drawer back in.",
        "Shut the drawer.",
    ],
    "drawer-open-v3": [
        "Open the drawer.",
        "Pull the drawer open.",
        "Grab the drawer handle and pull it out.",
        "Slide the drawer out.",
        "Pull out the drawer.",
    ],
    "faucet-close-v3": [
        "Turn off the faucet.",
        "Close the faucet.",
        "Rotate the faucet handle to shut off the water.",
        "Turn the tap handle to close it.",
        "Shut the tap.",
    ],
    "faucet-open-v3": [
        "Turn on the faucet.",
        "Open the faucet.",
        "Rotate the faucet handle to turn on the water.",
        "Turn the tap handle to open it.",
        "Open the tap.",
    ],
    "hammer-v3": [
        "Hammer the nail into the wall.",
        "Pick up the hammer and drive the nail in.",
        "Grab the hammer and hit the nail.",
        "Use the hammer to knock the nail into the board.",
        "Drive the nail in with the hammer.",
    ],
    "hand-insert-v3": [
        "Insert the gripper into the hole.",
        "Put the hand into the hole in the table.",
        "Move the gripper down into the hole.",
        "Reach into the hole.",
        "Place the gripper inside the hole.",
    ],
    "handle-press-side-v3": [
        "Press the handle down from the side.",
        "Push the handle down sideways.",
        "Reach the handle from the side and press it down.",
        "Push down on the side handle.",
        "Press the side-facing handle down.",
    ],
    "handle-press-v3": [
        "Press the handle down.",
        "Push the handle down.",
        "Push down on the handle.",
        "Press down the lever handle.",
        "Move the handle all the way down.",
    ],
    "handle-pull-side-v3": [
        "Pull the handle up from the side.",
        "Lift the handle up sideways.",
        "Reach the handle from the side and pull it up.",
        "Pull up on the side handle.",
        "Raise the side-facing handle.",
    ],
    "handle-pull-v3": [
        "Pull the handle up.",
        "Lift the handle up.",
        "Pull up on the handle.",
        "Raise the lever handle.",
        "Move the handle all the way up.",
    ],
    "lever-pull-v3": [
        "Pull the lever.",
        "Rotate the lever up.",
        "Grab the lever and pull it up.",
        "Swing the lever upward.",
        "Lift the lever arm.",
    ],
    "peg-insert-side-v3": [
        "Insert the peg into the hole from the side.",
        "Pick up the peg and push it sideways into the hole.",
        "Grab the peg and slide it into the hole.",
        "Put the peg into the side hole.",
        "Fit the peg into the hole in the box.",
    ],
    "peg-unplug-side-v3": [
        "Unplug the peg from the side.",
        "Pull the peg out of the hole sideways.",
        "Grab the peg and pull it out.",
        "Remove the peg from the hole.",
        "Slide the peg out of the box.",
    ],
    "pick-out-of-hole-v3": [
        "Pick the puck up out of the hole.",
        "Lift the puck out of the hole.",
        "Grab the puck in the hole and raise it.",
        "Take the puck out of the hole.",
        "Pull the puck up from the hole.",
    ],
    "pick-place-v3": [
        "Pick up the puck and place it at the goal.",
        "Grab the puck and put it on the target.",
        "Lift the puck and move it to the goal position.",
        "Pick the puck up and set it down at the target.",
        "Move the puck to the goal by carrying it.",
    ],
    "pick-place-wall-v3": [
        "Pick up the puck, go over the wall, and place it at the goal.",
        "Lift the puck over the wall and put it on the target.",
        "Carry the puck past the wall to the goal.",
        "Grab the puck and move it over the wall to the target.",
        "Pick the puck up and place it behind the wall.",
    ],
    "plate-slide-back-side-v3": [
        "Slide the plate out of the cabinet sideways.",
        "Pull the plate back out of the cabinet from the side.",
        "Get the plate out of the cabinet, sliding it sideways.",
        "Slide the plate sideways back to the start.",
        "Remove the plate from the cabinet by sliding it to the side.",
    ],
    "plate-slide-back-v3": [
        "Slide the plate back out of the cabinet.",
        "Pull the plate out of the cabinet.",
        "Get the plate out of the cabinet.",
        "Slide the plate back toward you.",
        "Remove the plate from the cabinet by sliding it back.",
    ],
    "plate-slide-side-v3": [
        "Slide the plate into the cabinet sideways.",
        "Push the plate sideways into the cabinet.",
        "Slide the plate to the side into the cabinet.",
        "Move the plate sideways into the goal.",
        "Push the plate into the cabinet from the side.",
    ],
    "plate-slide-v3": [
        "Slide the plate into the cabinet.",
        "Push the plate into the cabinet.",
        "Slide the plate forward into the goal.",
        "Move the plate into the cabinet by sliding it.",
        "Push the plate forward until it is in the cabinet.",
    ],
    "push-back-v3": [
        "Push the puck back to the goal.",
        "Slide the puck backward to the target.",
        "Move the puck back toward you to the goal.",
        "Pull the puck back to the target position.",
        "Slide the puck back onto the goal.",
    ],
    "push-v3": [
        "Push the puck to the goal.",
        "Slide the puck to the target.",
        "Push the puck across the table to the goal.",
        "Move the puck to the target by pushing it.",
        "Nudge the puck onto the goal position.",
    ],
    "push-wall-v3": [
        "Push the puck around the wall to the goal.",
        "Slide the puck past the wall to the target.",
        "Push the puck to the goal, going around the wall.",
        "Move the puck around the wall onto the target.",
        "Push the puck past the wall.",
    ],
    "reach-v3": [
        "Reach the goal position.",
        "Move the gripper to the target.",
        "Reach for the goal.",
        "Bring the hand to the goal location.",
        "Move the arm to the target point.",
    ],
    "reach-wall-v3": [
        "Reach over the wall to the goal.",
        "Move the gripper past the wall to the target.",
        "Go around the wall and reach the goal.",
        "Bring the hand to the goal without hitting the wall.",
        "Reach the target behind the wall.",
    ],
    "shelf-place-v3": [
        "Pick up the puck and place it on the shelf.",
        "Put the puck onto the shelf.",
        "Grab the puck and set it on the shelf.",
        "Lift the puck and place it on the shelf's target.",
        "Move the puck onto the shelf.",
    ],
    "soccer-v3": [
        "Kick the ball into the goal.",
        "Push the soccer ball into the net.",
        "Score a goal with the soccer ball.",
        "Shoot the ball into the goal.",
        "Knock the soccer ball into the goal.",
    ],
    "stick-pull-v3": [
        "Grab the stick and pull the box with it.",
        "Use the stick to pull the box.",
        "Pick up the stick, hook the box, and pull it back.",
        "Pull the box toward you with the stick.",
        "Hook the box's handle with the stick and pull.",
    ],
    "stick-push-v3": [
        "Grab the stick and push the box with it.",
        "Use the stick to push the box.",
        "Pick up the stick and shove the box forward.",
        "Push the box away with the stick.",
        "Hold the stick and push the box to the goal.",
    ],
    "sweep-into-v3": [
        "Sweep the puck into the hole.",
        "Push the puck into the hole.",
        "Slide the puck into the hole in the table.",
        "Sweep the puck into the goal hole.",
        "Move the puck into the hole by sweeping it.",
    ],
    "sweep-v3": [
        "Sweep the puck off the table.",
        "Push the puck off the edge of the table.",
        "Slide the puck off the table.",
        "Sweep the puck over the table's edge.",
        "Knock the puck off the table.",
    ],
    "window-close-v3": [
        "Close the window.",
        "Slide the window shut.",
        "Push the window closed.",
        "Slide the window to close it.",
        "Shut the window.",
    ],
    "window-open-v3": [
        "Open the window.",
        "Slide the window open.",
        "Push the window to open it.",
        "Slide the window sideways to open it.",
        "Open the sliding window.",
    ],
}


def derived_instructions(env_name: str) -> list[str]:
    """Sentences made from an env name ("handle-pull-side-v3" -> "handle pull side")."""
    words = [w for w in env_name.split("-") if not (w.startswith("v") and w[1:].isdigit())]
    phrase = " ".join(words)
    return [
        f"Do the {phrase} task.",
        f"Complete the {phrase} task.",
        f"Perform {phrase}.",
        f"Carry out the {phrase} task with the robot arm.",
    ]


def instructions_for(env_name: str) -> list[str]:
    """Every paraphrase for a task (hand-written, or derived from its name)."""
    return INSTRUCTIONS.get(env_name) or derived_instructions(env_name)


def instruction_for(env_name: str, seed: int) -> str:
    """The paraphrase an episode with this seed uses (deterministic)."""
    options = instructions_for(env_name)
    return options[int(np.random.default_rng([int(seed), 7919]).integers(len(options)))]
