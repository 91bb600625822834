"""Pseudo-labels: a dataset's few labelled episodes train an inverse-dynamics model, which labels
the rest (`care label`; VPT's recipe). dataset -> IDM -> pseudo-labelled dataset -> `care finetune`."""
