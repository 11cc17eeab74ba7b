import torch

from classicnets.evaluate.metrics import RunningMean, confusion_matrix, topk_correct


def test_topk_correct_counts_on_hand_built_logits() -> None:
    logits = torch.tensor(
        [
            [0.9, 0.05, 0.03, 0.01, 0.005, 0.005],  # target 0: top-1 hit
            [0.1, 0.2, 0.3, 0.4, 0.0, -1.0],  # target 0: rank 4 -> top-5 hit only
            [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],  # target 4: rank >= 2 -> top-5 hit
            [6.0, 5.0, 4.0, 3.0, 2.0, 1.0],  # target 5: rank 6 -> miss
        ]
    )
    targets = torch.tensor([0, 0, 4, 5])
    top1, top5 = topk_correct(logits, targets, ks=(1, 5))
    assert (int(top1), int(top5)) == (1, 3)


def test_topk_with_fewer_classes_than_k_counts_everything() -> None:
    logits = torch.randn(7, 3)
    targets = torch.randint(0, 3, (7,))
    _, top5 = topk_correct(logits, targets, ks=(1, 5))
    assert int(top5) == 7


def test_topk_counts_sum_exactly_over_batches() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(100, 10, generator=generator)
    targets = torch.randint(0, 10, (100,), generator=generator)
    whole = topk_correct(logits, targets)
    parts = [topk_correct(logits[i : i + 7], targets[i : i + 7]) for i in range(0, 100, 7)]
    assert [int(v) for v in whole] == [sum(int(p[k]) for p in parts) for k in range(2)]


def test_confusion_matrix_rows_are_true_classes() -> None:
    matrix = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 2]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_running_mean_state_round_trip() -> None:
    mean = RunningMean(torch.device("cpu"))
    mean.add(torch.tensor(6.0), 3)
    copy = RunningMean(torch.device("cpu"))
    copy.load(mean.state())
    assert copy.value() == mean.value() == 2.0
