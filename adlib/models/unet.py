"""EpsUNet: diffusers' UNet2DModel on the C x h x w feature map (3 x 3 convolutions, attention below the top)."""
from diffusers import ConfigMixin, ModelMixin, UNet2DModel
from diffusers.configuration_utils import register_to_config


class EpsUNet(ModelMixin, ConfigMixin):
    _supports_gradient_checkpointing = True  # UNet2DModel's blocks carry the switch

    @register_to_config
    def __init__(self, channels: int = 192, grid: int = 16, widths: tuple = (128, 256), layers_per_block: int = 1):
        super().__init__()
        n = len(widths)
        self.unet = UNet2DModel(
            sample_size=grid, in_channels=channels, out_channels=channels, block_out_channels=tuple(widths),
            layers_per_block=layers_per_block, down_block_types=("DownBlock2D",) + ("AttnDownBlock2D",) * (n - 1),
            up_block_types=("AttnUpBlock2D",) * (n - 1) + ("UpBlock2D",), norm_num_groups=32)

    def forward(self, x, t):
        return self.unet(x.to(self.unet.conv_in.weight.dtype), t).sample
