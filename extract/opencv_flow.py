"""OpenCV's flow methods, one frame pair at a time: tvl1 (the paper's), dis, farneback."""
from __future__ import annotations

from .flow_methods import FlowMethod, register_flow


@register_flow
class OpenCVTVL1(FlowMethod):
    name = "tvl1"
    summary = "the paper's and TSN's Dual TV-L1, OpenCV, slow on CPU"
    record = {"implementation": "opencv DualTVL1", "parameters": "opencv defaults"}

    def pair_function(self, options=None):
        import cv2

        calc = cv2.optflow.DualTVL1OpticalFlow_create().calc
        return lambda a, b: calc(a, b, None)


@register_flow
class OpenCVDIS(FlowMethod):
    name = "dis"
    summary = "Dense Inverse Search, medium preset: fast, hundreds of frames/s on CPU"
    record = {"implementation": "opencv DIS", "preset": "medium"}

    def pair_function(self, options=None):
        import cv2

        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return lambda a, b: dis.calc(a, b, None)


@register_flow
class OpenCVFarneback(FlowMethod):
    name = "farneback"
    summary = "OpenCV's Farneback"
    record = {"implementation": "opencv Farneback", "pyr_scale": 0.5, "levels": 3, "winsize": 15,
              "iterations": 3, "poly_n": 5, "poly_sigma": 1.2}

    def pair_function(self, options=None):
        import cv2

        p = self.record
        args = (p["pyr_scale"], p["levels"], p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"], 0)
        return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, *args)
