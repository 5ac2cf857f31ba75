"""Texts shipped for training language models offline (`archdsl train --data text`).

tinyshakespeare.txt: the first 256 KiB of Tiny Shakespeare (Karpathy, char-rnn, 2015),
lines from Shakespeare's plays, which are in the public domain.
"""
