"""kit-process-data's library: images and video frames in, structure from motion, a Nerfstudio-format dataset out.

`images` lists, copies and downscales images, `video` extracts frames, `colmap_runner` runs COLMAP (pycolmap or a
binary), `colmap_to_nerfstudio` turns its model into transforms.json, and `output_dir` keeps an earlier output whole
until a new one is complete.
"""
