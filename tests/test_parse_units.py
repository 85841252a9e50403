"""TransParser's parts and the boundary post-processing, on hand-made inputs."""
import numpy as np
import pytest
import torch

from tapos.data.clock import row_boundary_frames
from tapos.parse.segments import change_points, merge_short_segments, pick_peaks, runs_above
from tapos.parse.transparser import SPSUnit, TransParser, TransParserNet, local_loss


def test_sps_unit_shapes_and_attention():
    torch.manual_seed(0)
    unit = SPSUnit(d=12, patterns=7, d_phi=5, heads=2, d_k=4, d_ff=16, dropout=0.0)
    f = torch.randn(9, 12)
    out, alpha = unit(f)
    assert out.shape == (9, 12) and alpha.shape == (2, 9, 7)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(2, 9))
    assert unit.phi.shape == (7, 5)  # the pattern miner: m x d_phi
    # the attention of a head is softmax((f W_Q)(phi W_K)^T) / sqrt(d_k)
    q = f @ unit.w_q[1]
    k = unit.phi @ unit.w_k[1]
    torch.testing.assert_close(alpha[1], torch.softmax(q @ k.T / 2.0, -1))


def test_stacked_units_and_head_choice():
    cfg = dict(TransParser.DEFAULTS, d_model=8, patterns=5, d_phi=4, d_k=4, d_ff=8, units=2)
    net = TransParserNet(dim=6, num_classes=3, cfg=cfg).eval()
    f, att = net(torch.randn(4, 6))
    assert f.shape == (4, 8) and att.shape == (4, 5) and len(net.units) == 2
    torch.testing.assert_close(att.sum(-1), torch.ones(4))
    one = TransParserNet(dim=6, num_classes=3, cfg=dict(cfg, units=1, attention=1, d_model=None)).eval()
    f, att = one(torch.randn(4, 6))
    assert f.shape == (4, 6) and len(one.units) == 1


def test_local_loss_on_hand_made_attention():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    seg = torch.tensor([0, 0, 1, 1])
    loss, sim, dissim = local_loss(a, seg, lam=0.5)
    assert sim.item() == pytest.approx(0.0, abs=1e-3)
    assert dissim.item() == pytest.approx(np.sqrt(2), abs=1e-6)
    assert loss.item() == pytest.approx(0.5 / np.sqrt(2), abs=1e-3)
    # frames of one sub-action that disagree raise L_sim
    b = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.0, 1.0]])
    loss_b, sim_b, dissim_b = local_loss(b, seg, lam=0.5)
    # sim pairs (ordered, off-diagonal): (0,1),(1,0) at sqrt(.5), (2,3),(3,2) at 0 -> mean sqrt(.5)/2
    assert sim_b.item() == pytest.approx(np.sqrt(0.5) / 2, abs=1e-3)
    # dissim pairs: (0,2),(0,3) sqrt(2); (1,2),(1,3) sqrt(.5); each twice -> mean
    assert dissim_b.item() == pytest.approx((np.sqrt(2) + np.sqrt(0.5)) / 2, abs=1e-4)
    assert loss_b > loss
    # collapse (all frames the same one-hot) is penalized through lambda / L_dissim
    c = torch.tensor([[1.0, 0.0]] * 4)
    assert local_loss(c, seg, lam=0.5)[0].item() > 1e3
    # a single sub-action has no dissimilar pairs: no loss
    assert local_loss(a, torch.zeros(4, dtype=torch.long), lam=0.5) is None


def test_boundaries_from_argmax():
    assert change_points([3, 3, 1, 1, 1, 3]).tolist() == [2, 5]
    assert change_points([4]).tolist() == [] and change_points([2, 2]).tolist() == []
    # a 1-row flicker is merged into the longer neighbour; off (1) keeps it
    labels = [0, 0, 0, 0, 5, 0, 0, 1, 1, 1, 1]
    assert change_points(merge_short_segments(labels, 1)).tolist() == [4, 5, 7]
    assert change_points(merge_short_segments(labels, 2)).tolist() == [7]
    assert merge_short_segments([1, 2, 3], 5).tolist() in ([1, 1, 1], [3, 3, 3], [2, 2, 2])


def test_argmax_boundaries_of_a_model():
    """TransParser's inference reads the argmax of the last unit's attention."""
    p = TransParser(patterns=3, d_model=None, units=1, heads=2, d_phi=2, d_k=2, d_ff=4)
    p.dim, p.num_classes = 2, 2
    p.model = p.build_model().eval()
    att = torch.tensor([[.9, .05, .05]] * 3 + [[.1, .8, .1]] * 4 + [[.2, .2, .6]] * 2)

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))  # places the input on the model's device

        def forward(self, x):
            return x, att

    p.model = Fixed()
    assert p.boundary_rows(np.zeros((9, 2), np.float32)).tolist() == [3, 7]
    p.config["min_segment"] = 3
    assert p.boundary_rows(np.zeros((9, 2), np.float32)).tolist() == [3]


def test_peaks_and_runs():
    s = [0, 1, 0, 0.2, 3, 0.1, 0, 2.5, 0]
    assert pick_peaks(s, 0.5, 1).tolist() == [1, 4, 7]
    assert pick_peaks(s, 0.5, 4).tolist() == [4]  # 1 and 7 lie within 4 rows of the higher peak at 4
    assert runs_above([0.1, 0.6, 0.9, 0.7, 0.2, 0.8, 0.1], 0.5).tolist() == [2, 5]


def test_boundary_rows_to_frames():
    # rows of a stride-2 cache on a clip at twice the annotation's rate: frames[t] = t
    assert row_boundary_frames([0, 3, 5, 5, 9], np.arange(8) * 1.0).tolist() == [3, 5]
    # halfway between the rows either side, plus half a frame (the clock's rule)
    assert row_boundary_frames([2, 3], np.array([0.0, 1.4, 2.6, 3.5])).tolist() == pytest.approx([2.5, 3.55])


def test_apply_options_refuses_unknown_names_with_a_suggestion():
    from tapos.data.errors import TaposError
    from tapos.data.options import apply_options

    defaults = {"lr": 0.1, "epochs": 3}
    assert apply_options(defaults, {"lr": 0.5}, "x") == {"lr": 0.5, "epochs": 3} and defaults["lr"] == 0.1
    assert apply_options(defaults, None, "x") == defaults
    with pytest.raises(TaposError, match=r"^tcn: unknown option\(s\) epoch \(known: lr, epochs\); did you mean epochs\?$"):
        apply_options(defaults, {"epoch": 4}, "tcn")


def test_ctm_sum_over_labelings_matches_brute_force():
    """The forward recursion sums exactly the labelings with n segments of at least L frames,
    neighbours differing (checked against enumeration, batched with unequal lengths)."""
    import itertools

    from tapos.parse.ctm import all_labelings_log_likelihood

    rng = np.random.default_rng(0)
    k, T = 3, 7
    lp = torch.log_softmax(torch.tensor(rng.normal(size=(3, T, k)) * 2), -1)
    lengths, n, L = torch.tensor([7, 6, 7]), torch.tensor([3, 2, 2]), torch.tensor([2, 1, 3])

    def brute(b):
        total = []
        for lab in itertools.product(range(k), repeat=int(lengths[b])):
            runs = [len(list(g)) for _, g in itertools.groupby(lab)]
            if len(runs) == n[b] and min(runs) >= L[b]:
                total.append(sum(float(lp[b, t, c]) for t, c in enumerate(lab)))
        return float(torch.logsumexp(torch.tensor(total), 0))

    got = all_labelings_log_likelihood(lp, lengths, n, L)
    assert np.allclose(got.numpy(), [brute(b) for b in range(3)], atol=1e-9)
    # without a minimum length every segmentation counts
    one = all_labelings_log_likelihood(lp[:1], lengths[:1], n[:1])
    assert one > got[:1]
