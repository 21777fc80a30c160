package android.view;

/** Compile-check stub. */
public class View {
    public interface OnClickListener {
        void onClick(View v);
    }
    public void setOnClickListener(OnClickListener l) {}
    public boolean isEnabled() { return true; }
    public void setEnabled(boolean enabled) {}
    public boolean getFitsSystemWindows() { return false; }
    public void setFitsSystemWindows(boolean fitSystemWindows) {}
    public void setPadding(int left, int top, int right, int bottom) {}
}
