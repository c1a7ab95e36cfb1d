"""transformers' side of bench/caption.bench.ts: captions image files with BlipForConditionalGeneration /
GitForCausalLM on torch CPU, the way the engine is timed (files → token ids, batches of `batch` images).

    python bench/caption_peer.py '{"dir": ..., "files": [...], "batch": 8, "beams": 8, "max_length": 32, "min_length": 5}'

Prints one JSON line: seconds (after one untimed warm-up batch), the token ids per image, torch's threads.
"""

import json
import sys
import time

import torch
from PIL import Image
from transformers import BlipForConditionalGeneration, GitForCausalLM
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil


def main() -> None:
    args = json.loads(sys.argv[1])
    config = json.load(open(f"{args['dir']}/config.json"))
    is_blip = config["model_type"] == "blip"
    model = (BlipForConditionalGeneration if is_blip else GitForCausalLM).from_pretrained(args["dir"]).eval()
    processor = (BlipImageProcessorPil if is_blip else CLIPImageProcessorPil).from_pretrained(args["dir"])
    eos = model.config.text_config.sep_token_id if is_blip else model.config.eos_token_id
    files, batch = args["files"], args["batch"]
    kwargs = {"num_beams": args["beams"], "max_length": args["max_length"], "min_length": args["min_length"], "do_sample": False}

    def run(chunk):
        pixels = processor([Image.open(f).convert("RGB") for f in chunk], return_tensors="pt").pixel_values
        with torch.inference_mode():
            return model.generate(pixel_values=pixels, **kwargs).tolist()

    run(files[:batch])  # warm-up
    tokens = []
    t0 = time.perf_counter()
    for i in range(0, len(files), batch):
        tokens += run(files[i : i + batch])
    seconds = time.perf_counter() - t0
    cut = []
    for seq in tokens:
        end = next((j + 1 for j in range(1, len(seq)) if seq[j] == eos), len(seq))
        cut.append(seq[:end])
    print(json.dumps({"seconds": seconds, "tokens": cut, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
