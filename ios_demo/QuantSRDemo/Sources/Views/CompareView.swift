import SwiftUI

/// Before / after with a draggable split: the input (smoothly enlarged, like quantsr's bicubic comparison) on the
/// left of the split, the upscaled result on the right.
struct CompareView: View {
    let before: UIImage
    let after: UIImage
    @State private var split = 0.5
    @State private var showAfterOnly = false

    var body: some View {
        VStack(spacing: 12) {
            GeometryReader { geometry in
                let width = geometry.size.width
                ZStack(alignment: .leading) {
                    Image(uiImage: after)
                        .resizable()
                        .interpolation(.high)
                        .aspectRatio(contentMode: .fit)
                    if !showAfterOnly {
                        Image(uiImage: before)
                            .resizable()
                            .interpolation(.high)
                            .aspectRatio(contentMode: .fit)
                            .mask(alignment: .leading) {
                                Rectangle().frame(width: width * split)
                            }
                        Rectangle()
                            .fill(.white)
                            .frame(width: 2)
                            .shadow(radius: 2)
                            .offset(x: width * split - 1)
                    }
                }
                .contentShape(Rectangle())
                .gesture(DragGesture(minimumDistance: 0).onChanged { value in
                    split = min(max(value.location.x / max(width, 1), 0), 1)
                })
            }
            .aspectRatio(after.size.width / max(after.size.height, 1), contentMode: .fit)
            .clipped()
            Slider(value: $split, in: 0...1) {
                Text("Split")
            } minimumValueLabel: {
                Text("Before").font(.caption)
            } maximumValueLabel: {
                Text("After").font(.caption)
            }
            .disabled(showAfterOnly)
            Toggle("Show the result only", isOn: $showAfterOnly)
        }
    }
}
