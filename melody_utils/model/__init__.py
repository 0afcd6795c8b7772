"""The networks (``lstm``: the seed's window models and the causal LSTM), their numpy inference for fast
CPU generation (``stepper``) and checkpoints (``checkpoint``)."""
