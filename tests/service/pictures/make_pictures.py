"""Writes the HEIC test pictures beside this file. HEIC needs an encoder the project does not ship, so run it where
pillow-heif is installed (``pip install pillow-heif scikit-image``; pillow-heif 1.9.0 wrote the committed files):

    python tests/service/pictures/make_pictures.py
"""

from pathlib import Path

import pillow_heif
from PIL import Image
from skimage import data

pillow_heif.register_heif_opener()
here = Path(__file__).parent

# A 64x32 picture, green on its left quarter, stored with EXIF orientation 6 ("turn 90 degrees clockwise to show"):
# pillow-heif writes it as the phones do, as a rotation in the HEIF container. Shown upright it is 32x64, green on top.
band = Image.new("RGB", (64, 32), (200, 10, 10))
band.paste((10, 200, 10), (0, 0, 16, 32))
exif = Image.Exif()
exif[0x0112] = 6
band.save(here / "turned.heic", exif=exif.tobytes(), quality=90)

# scikit-image's public-domain astronaut portrait (NASA), at 256x256: one face, smiling.
Image.fromarray(data.astronaut()).resize((256, 256), Image.Resampling.LANCZOS).save(here / "astronaut.heic", quality=80)
