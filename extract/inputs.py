"""What the network sees: the input format that decoding, optical flow, the network and the
frames TSN share (TSN's: BNInception on 224 x 224 crops; flow on 340 x 256 frames, 5 fields
stacked). One place, so that a cache and a fine-tuned TSN see the same pixels."""

SHORT_SIDE = 256         # RGB frames are scaled to this short side, then centre-cropped
CROP = 224               # side of the square crop the network takes
FLOW_SIZE = (340, 256)   # width, height of the frames flow is computed on (TSN's dense_flow)
FLOW_BOUND = 20.0        # pixels; larger displacements are clipped before quantising to 0..255
FLOW_STACK = 5           # flow fields per row (x and y each: 10 channels)
IN_CHANNELS = {"rgb": 3, "flow": 2 * FLOW_STACK}  # input channels of the network per modality
