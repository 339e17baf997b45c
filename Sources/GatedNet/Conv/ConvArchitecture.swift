/// Architectures of the papers, ready to build (MATH.md §5). Max pooling between VGG /
/// DavidNet stages is replaced by a stride-2 convolution (the layer set has only global
/// pooling); the final pooling is global average pooling. Pick the regime in the spec:
/// DGN-No-Act is `.dlgn` (linear feature net, soft gates).
public enum ConvArchitecture: Int, CaseIterable, Sendable {
    /// Paper 001 GCONV: 4 conv 3×3 (64, 64, 128, 128), GAP, dense 256, output.
    case gconv = 0
    /// Paper 001 VCONV: GCONV without GAP (flatten into dense 256).
    case vconv = 1
    /// Paper 003: 5 conv 3×3 × 26 filters, GAP, dense 64, output.
    case dlgnConv = 2
    /// A small ResNet: conv 16, three residual blocks of two 3×3 convs (16; 32 stride 2;
    /// 64 stride 2; projections where shapes change), GAP, output.
    case resnetSmall = 3
    /// VGG19's 16 conv layers (64² 128² 256⁴ 512⁴ 512⁴), GAP, output.
    case vgg19 = 4
    /// DavidNet (the fast CIFAR-10 ResNet): prep 64, stage 128 + residual block (128, 128),
    /// stage 256, stage 512 + residual block (512, 512), GAP, output.
    case davidNet = 5

    public var name: String {
        switch self {
        case .gconv: "GCONV"
        case .vconv: "VCONV"
        case .dlgnConv: "DLGN-CONV"
        case .resnetSmall: "ResNet-small"
        case .vgg19: "VGG19"
        case .davidNet: "DavidNet"
        }
    }

    /// The layer list for `classes` outputs; every channel / unit count is multiplied by
    /// `widthScale` (rounded, at least 1) to build smaller variants.
    public func layers(classes: Int, widthScale: Float = 1) throws -> [ConvLayerSpec] {
        guard classes >= 1 else { throw GatedNetError.invalidArgument("classes: got \(classes), need >= 1") }
        guard widthScale.isFinite && widthScale > 0 && widthScale <= 64 else {
            throw GatedNetError.invalidArgument("width_scale: got \(widthScale), need 0 < width_scale <= 64")
        }
        func w(_ c: Int) -> Int { max(1, Int((Float(c) * widthScale).rounded())) }
        func conv(_ c: Int, stride: Int = 1, block: Int = 0) -> ConvLayerSpec { .conv(w(c), kernel: 3, stride: stride, block: block) }
        let out = ConvLayerSpec.dense(classes)
        switch self {
        case .gconv:
            return [conv(64), conv(64), conv(128), conv(128), .globalAveragePool, .dense(w(256)), out]
        case .vconv:
            return [conv(64), conv(64), conv(128), conv(128), .flatten, .dense(w(256)), out]
        case .dlgnConv:
            return Array(repeating: conv(26), count: 5) + [.globalAveragePool, .dense(w(64)), out]
        case .resnetSmall:
            return [conv(16), conv(16, block: 1), conv(16, block: 1), conv(32, stride: 2, block: 2), conv(32, block: 2),
                    conv(64, stride: 2, block: 3), conv(64, block: 3), .globalAveragePool, out]
        case .vgg19:
            let stages: [(Int, Int)] = [(64, 2), (128, 2), (256, 4), (512, 4), (512, 4)]
            var l: [ConvLayerSpec] = []
            for (s, (c, n)) in stages.enumerated() {
                for i in 0..<n { l.append(conv(c, stride: s > 0 && i == 0 ? 2 : 1)) }
            }
            return l + [.globalAveragePool, out]
        case .davidNet:
            return [conv(64), conv(128, stride: 2), conv(128, block: 1), conv(128, block: 1), conv(256, stride: 2),
                    conv(512, stride: 2), conv(512, block: 2), conv(512, block: 2), .globalAveragePool, out]
        }
    }
}
