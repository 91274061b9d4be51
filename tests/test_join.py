"""Recognition-driven joining (runtime/join.py), on pages built from real MNIST test digits: a
digit whose strokes do not meet is read as one digit, two digits written close stay two, and
the joined reading goes through the frame's one batched call."""

from __future__ import annotations

import cv2
import numpy as np

from mnist_edge.runtime.digits import recognize
from mnist_edge.runtime.join import choose_join, join_options
from mnist_edge.runtime.pieces import Piece
from mnist_edge.runtime.preprocess import find_digit_candidates
from tests.synthetic import scaled_ink
from tests.test_page_rules import classifier, counting, paper_with, sure  # noqa: F401  (fixtures)


def broken_in_two(ink: np.ndarray) -> np.ndarray | None:
    """The digit with a 3-pixel band of columns wiped out where its ink is thinnest (between
    a fifth and four fifths of its width), if that leaves two pieces side by side, each a
    real part of the digit (a 4's two strokes, a 9's loop and stem); else None."""
    w = ink.shape[1]
    profile = (ink > 0.3).sum(axis=0)
    lo, hi = w // 5, 4 * w // 5
    inked = [c for c in range(lo, hi) if profile[c] > 0]
    if not inked:
        return None
    c = min(inked, key=lambda k: profile[k])
    broken = ink.copy()
    broken[:, c - 1 : c + 2] = 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        (broken > 0.05).astype(np.uint8), connectivity=8
    )
    big = [k for k in range(1, count) if stats[k, 4] >= 0.15 * stats[1:, 4].sum()]
    return broken if count == 3 and len(big) == 2 else None


def test_a_digit_in_two_pieces_is_read_as_one(mnist, classifier, sure):  # noqa: F811
    rng = np.random.default_rng(3)
    trials = right = one = 0
    for label in (0, 4, 5, 7, 9):
        for i in sure[label][:40]:
            broken = broken_in_two(scaled_ink(mnist.x_test[i], int(rng.integers(80, 140))))
            if broken is None:
                continue
            frame = paper_with([(broken, 250, 150)], seed=trials)
            if len(find_digit_candidates(frame)) != 2:
                continue  # merged by geometry already: not what this tests
            trials += 1
            result = recognize(frame, classifier)
            one += len(result.digits) == 1
            right += result.text == str(label)
    assert trials >= 20, f"only {trials} digits came apart in two regions"
    assert right >= 0.6 * trials and one >= 0.6 * trials, (
        f"{right} of {trials} digits in two pieces read right ({one} as one digit)"
    )


def test_digits_written_close_stay_two(mnist, classifier, sure):  # noqa: F811
    """Two sure digits a few pixels apart, narrow ones included (1s and 7s), are never joined."""
    rng = np.random.default_rng(4)
    pairs = joined = 0
    for _ in range(40):
        a, b = (int(rng.choice(sure[d])) for d in rng.choice([1, 1, 7, 2, 3, 4, 9], 2))
        h = int(rng.integers(70, 120))
        first, second = scaled_ink(mnist.x_test[a], h), scaled_ink(mnist.x_test[b], h)
        gap = round(0.06 * h)
        items = [(first, 200, 150), (second, 200 + first.shape[1] + gap, 150)]
        frame = paper_with(items, seed=pairs)
        candidates = find_digit_candidates(frame)
        if len(candidates) != 2:
            continue
        pairs += 1
        joined += len(recognize(frame, classifier).digits) == 1
    assert pairs >= 30 and joined == 0, f"{joined} of {pairs} close pairs read as one digit"


def test_joined_reading_shares_the_frame_s_one_predict(mnist, counting, sure):  # noqa: F811
    for i in sure[4]:
        broken = broken_in_two(scaled_ink(mnist.x_test[i], 100))
        if broken is None:
            continue
        candidates = find_digit_candidates(paper_with([(broken, 250, 150)]))
        if len(candidates) == 2 and candidates[0].joined is not None:
            break
    else:
        raise AssertionError("no 4 came apart into a pair offered for joining")
    recognize(paper_with([(broken, 250, 150)]), counting)
    assert counting.calls == [3], counting.calls  # the two regions and the two joined, in one call


def _piece(x: int, y: int, w: int, h: int) -> Piece:
    return Piece(x, y, w, h, w * h, np.ones((h, w), np.uint8), w * h)


def test_join_options_need_a_pair_no_wider_than_a_digit_in_one_line():
    def region(x, y, w, h):
        return ((x, y, w, h), [_piece(x, y, w, h)])

    close = [region(0, 0, 20, 60), region(24, 5, 20, 55)]  # 4 px apart, 44 wide: one digit?
    apart = [region(0, 0, 20, 60), region(35, 0, 20, 60)]  # 15 px: a gap between digits
    wide = [region(0, 0, 40, 60), region(42, 0, 40, 60)]  # 82 wide: two digits
    stacked = [region(0, 0, 30, 30), region(5, 40, 30, 30)]  # not one line
    assert list(join_options(close, [60, 55])) == [0]
    assert join_options(apart, [60, 60]) == {}
    assert join_options(wide, [60, 60]) == {}
    assert join_options(stacked, [30, 30]) == {}
    # Beside a long-tailed digit the pair is tall, but wide against its line's digits.
    assert join_options([region(0, 20, 22, 44), region(25, 0, 30, 85)], [44, 44]) == {}


def test_choose_join_keeps_sure_pairs_apart():
    assert choose_join(0.45, 0.99, 0.99)  # one part unsure, the joined sure
    assert not choose_join(0.99, 0.97, 1.0)  # two sure digits stay two
    assert not choose_join(0.5, 0.6, 0.8)  # the joined not sure either
